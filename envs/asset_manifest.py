"""Files of simpler-env/ManiSkill2_real2sim the SIMPLER port uses, with their sha256 and size.

Generated from a verified copy at commit `COMMIT`; `selfflow-robot assets fetch` downloads exactly
these and checks every checksum. Paths are relative to the repository root. The Google robot's
description files are listed in `asset_manifest_robot.py`, the scene's (cabinets, objects, overlays) here.

The drawer variant-aggregation scene (`envs/drawer_variant_scene.py`) needs, per scene variant
(`assets.variant_files` lists them): the stage `data/hab2_bench_assets/stages/frl_apartment_stage_simple.glb`,
the cabinets `data/custom/mk_station.urdf` / `mk_station2.urdf` / `mk_station3.urdf` (all in `FILES`),
and for mk_station3 its tabletop mesh `data/custom/models/stone_tabletop.glb` (`VARIANT_AGG_EXTRA_FILES`:
not in the shared asset copy, so kept out of `FILES`, which that copy must match).
"""
from selfflow_robot.envs.asset_manifest_robot import ROBOT_DESCRIPTION, ROBOT_FILES_BY_FOLDER

COMMIT = "ef7a4d4fdf4b69f2c2154db5b15b9ac8dfe10682"

# folder ("" = the repository root) -> file name -> (sha256, size in bytes)
SCENE_FILES_BY_FOLDER: dict[str, dict[str, tuple[str, int]]] = {
    "": {
        "LICENSE": ("c71d239df91726fc519c6eb72d318ec65820627232b2f796219e87dcf35d0ab4", 11357),
    },
    "data/custom": {
        "info_bridge_custom_baked_tex_v0.json":
            ("a25bdb72746bd51e7cb612d95ace97b535623ba6b79367084c4fa3ba62d08eda", 494),
        "info_bridge_custom_v0.json": ("18b428fc3a10683389ada74233ac63dee04db2870453890133172cdbaa6678cc", 2958),
        "info_pick_custom_baked_tex_v0.json":
            ("ab81c61dee637e6f8ae5094308e1c0c2894e8f30365f0f778b5a2e8da6ac1e4b", 5031),
        "info_pick_custom_baked_tex_v1.json":
            ("18f97a64d788d874cc98a51e9cdad2d18d3402d272c54dd8cf2669d91fa9ad19", 5055),
        "info_pick_custom_v0.json": ("2a27c8f63ead5d2451f344455d462cbb161c016eae881ba2b50c7915fca414a3", 5049),
        "mk_station.urdf": ("14c11ece256bda7e74d1043a3de1ddbdd9c03d1afa2b1ea0fe483b9374675427", 13729),
        "mk_station2.urdf": ("96f6643efbcb6ef2963c92a583d7fbad239aade31779698371f94efb525ed481", 13729),
        "mk_station3.urdf": ("e59c61546a4a59fd454f8a8f5bab02cde462b034afb498b6aa085c3fb63a85de", 13613),
        "mk_station4.urdf": ("808492880cffde8d4f0e8a5e6cc2e7883998d42c27f856f098e47c02fb979d0a", 13594),
        "mk_station_recolor.urdf": ("59efdcedc52fd89fcab1715cebe57c68a8ffefe676d6b9bbd294f82dfeb8307a", 13803),
    },
    "data/custom/models/apple": {
        "Image_0.001.png": ("4001636b44c127a783108acc129cd17b8765100fc516a5dc888fedd467774833", 1270502),
        "collision.obj": ("1bca40992fb7e105f919d133547a0d13aaee5ba0182e34ea3cde1e6726a62441", 1873617),
        "textured.dae": ("ed1c5de566acc30e408c65bc3a04884256b7023205ee951251408f10e5adf92b", 216474),
    },
    "data/custom/models/baked_apple": {
        "collision.obj": ("1bca40992fb7e105f919d133547a0d13aaee5ba0182e34ea3cde1e6726a62441", 1873617),
        "textured.glb": ("a23f0ef0c0346165a6530d3dedde16c7f6bb2e582ec61b0eede3e449d8903a4d", 146324),
        "textured_bkup.glb": ("a23f0ef0c0346165a6530d3dedde16c7f6bb2e582ec61b0eede3e449d8903a4d", 146324),
        "textured_cand1.glb": ("a66b4d0360e3d8dcec0c820490d09d4aee15fdde09d0bc378d740e7f6aad3c59", 143096),
        "textured_toobright.glb": ("62d328a270dcff6a676787a6a72e8cc8d90faba967f8c56eaaf584dead412f3b", 146596),
    },
    "data/custom/models/baked_apple_v2": {
        "collision.obj": ("1bca40992fb7e105f919d133547a0d13aaee5ba0182e34ea3cde1e6726a62441", 1873617),
        "textured.baked.glb": ("62d3eeae26287e5426d2d82f53004e13e4b19159e8f61a79fca1e7122b2a4f43", 73936),
        "textured.baked.zero123plus.png": ("5939ed0f41c25cb6a1f34d3c9ab5b787e8fee7509853aadd6690763f1b03f53c", 530052),
        "textured.baked.zero123plus_mask.png":
            ("605f2c3f0779c2584d22338dd3b2963e800121f96ff66f588bd94e9bf514e80c", 45058),
        "textured.glb": ("07a1d5422af1551fc3ee87b0e105c9f81459930e109c2718c1d0d4c998a37b38", 140092),
        "textured.vis.glb": ("56175984e7413e56a6a0e0339b199b9aa7e7297e0fcd25b374bae274b44a8a7b", 140012),
    },
    "data/custom/models/baked_opened_coke_can": {
        "collision.obj": ("7a86fedf06cfea120f5a41a9b02b25d2c9071fb181414852e4f992ba9e92c20d", 9019),
        "textured.glb": ("e28c5fa75636a0ee2e312067dab9e483d34d2c32d0aa2708001bab66af6ab6f7", 1937368),
        "textured_bkup.glb": ("e28c5fa75636a0ee2e312067dab9e483d34d2c32d0aa2708001bab66af6ab6f7", 1937368),
        "textured_cand1.glb": ("fe1496dd021b920831b7de6eaf9d228a4f6a4b04793fdf4254661042fc52384a", 1933024),
        "textured_toobright.glb": ("c0eff2a517bb2beb3e739f6ffb875d02df0dfabc9b34a09d42ecd39f0fcfeb7a", 1944208),
    },
    "data/custom/models/coke_can": {
        "Image_2.004.jpg": ("cc4068ac6cd1ecdadca33d2ea0568057ffde4eeccd84bd748dadda66b9b447e9", 350977),
        "collision.obj": ("7a86fedf06cfea120f5a41a9b02b25d2c9071fb181414852e4f992ba9e92c20d", 9019),
        "textured.dae": ("0fab276cf45fe9b24d68c09f582c55392a482474604bc16f18afd508358b222f", 4007418),
    },
    "data/custom/models/opened_coke_can": {
        "Image_2.004.jpg": ("cc4068ac6cd1ecdadca33d2ea0568057ffde4eeccd84bd748dadda66b9b447e9", 350977),
        "collision.obj": ("7a86fedf06cfea120f5a41a9b02b25d2c9071fb181414852e4f992ba9e92c20d", 9019),
        "textured.dae": ("0fab276cf45fe9b24d68c09f582c55392a482474604bc16f18afd508358b222f", 4007418),
    },
    "data/hab2_bench_assets/stages": {
        "frl_apartment_stage_simple.glb": ("431504de881de530626f64b282111108388751d7ec4ecfeaa6fdc306005ce9b9", 1426120),
    },
    "data/real_inpainting/bridge": {
        "bridge_1_cleanup.png": ("051abdf6a67da542f7c6fb34d0cfe70809febf45b2c577a2f79ff59ab3698290", 522496),
        "bridge_calibration.png": ("cf2df816694efa5326231fa1213cbaebec171da8d0a12e84c47ef1a750612680", 340238),
        "bridge_sink_calibrate.png": ("92d0f731006b5a05a23fc3904fac066f6c10c8b8858e9e0bd881df0d16b43f8e", 307918),
        "bridge_sink_calibrate_mask.png": ("8d94904ec1d00a4c7b216545a0676bd971dd0cc5c29c2acf9d71937521f43d44", 639),
        "debug.png": ("ca54aa7ff1920c98dc3c6e3db6912113741698e2997c627686425d1277797484", 342036),
        "stack_cube_1st_frame.png": ("8f7c19cd794b20b1e93583104523101e07460f0ddc7e58a1800a883285853e19", 230924),
    },
    "data/real_inpainting": {
        "bridge_real_eval_1.png": ("1d25ac179f7cdace1de14d5dab9496d52099231ea3e3d60eb3fe422c9802b611", 361295),
        "bridge_real_eval_2.png": ("b6bd4840b8c4de8f7919b1095bbb44221f04c92c7204afd7d36bf93fee233403", 312712),
        "bridge_sink.png": ("86b50fa15ede8e2c28cc01b6adffc40b79f7136130547c6ee905cf91b4aff188", 334926),
        "google_coke_can_real_eval_1.png": ("4218cc93e73c97fb4c275ec1c015fc51ae5c4d5d0c3ea9018bef31d0b71a87ba", 96389),
        "google_move_near_real_eval_1.png":
            ("c9bf9ace717a1895d1e0f2af2c4c5b0a2c8c030717cd1f44380074f640e06bd3", 101906),
        "open_drawer_a0.png": ("a98b68b0a6b097af38b463e7b30371ec30eb15391f62fe9f03f16b97a0f6359b", 133795),
        "open_drawer_a1.png": ("fef25cffac02dd31898514fee63d2b0b9e763448f657da4a1be007f5fd4cf5d0", 129521),
        "open_drawer_a2.png": ("75aeff00694ed2e4c9c299fc7a20bed1b3b7d6f863b28dc5964ea1931ea7069b", 128898),
        "open_drawer_b0.png": ("6665d9e3b2185c615994a5bdd435e2004c0374ebb1aa9480b7392c1dcc5277a5", 135840),
        "open_drawer_b1.png": ("5a106aa95d35a9ea5b0c3ae21e9aaea6496855494ab6c8d07dd25181615ad599", 130940),
        "open_drawer_b2.png": ("7b2eb39e654224fa5e8201eaa2614f76e72baa3881a0242b61c84e903d65ab48", 125760),
        "open_drawer_c0.png": ("3bb62bf601598467c3a9cc515abcc9b43a37bd1b2296b431420b5806367b04a9", 137761),
        "open_drawer_c1.png": ("72746163c07514e6dda4e4145961f619be0439814917b913a035295bf65bd7be", 129527),
        "open_drawer_c2.png": ("84b9eb5ac8a8eb8faa1866f8761af318f89e876c9b4d6632d47ead4c6854db9e", 132432),
    },
    "data/real_inpainting/fractal": {
        "11_table.png": ("f61eaaa551248b56f1511475d20f09e3be58c246f1f7fa2888cad9c09ace01e1", 96676),
        "1257_0_cleanup.png": ("c3da73b1bc3ec1ea0d93ed0e080818a7ba00c442ad2f8a53a963b04f77a1dcf7", 100557),
        "1257_0_cleanup_no_coke_can.png": ("5d58a63f4509906569cee0db65c9433f1b9021a2c0aca4f56baf9e591e63ad88", 98534),
        "1495_0_cleanup.png": ("a35103afd1f2bdc1c1640f3db69fc17f794072079afa389f50f4fc3cf9e984ae", 134585),
        "1495_0_cleanup_no_coke_can.png": ("d4b3d99d3e6dc33cbffa07055f59a869693818ada54394bd7bd73ee02111030f", 133819),
        "1539_0_cleanup.png": ("7edcd123bf9edf0105943bcad662a9502a3d2d73f536e3a0e7612892dec2e5bc", 136463),
        "1539_0_cleanup_no_coke_can.png": ("0f0bfca1796ca3f13b9839d2cc48a04e6194394b0fc80361f7da60b9cc105df8", 135629),
        "1991_0_cleanup.png": ("8efcc51c048ff5f60987828ea1b15b7bb45a1dbea5c3fc9c5a4dd1d8c9ae19d1", 102546),
        "1991_0_cleanup_no_coke_can.png": ("e84b16bb275763071e0a66636f71d615b473ea36a3b4f04405516ae3717f3391", 100762),
        "2398_0_cleanup.png": ("1e3eb1a7bb54530571f3a6fb6d7d0a5fee0b8dcddfc9689618ff5c7501cb6cd5", 99940),
        "2398_0_cleanup_no_coke_can.png": ("54805bae44b3121b713deb41dcf584260b24fafd7b0783e92bd563ef414fc9b5", 99094),
        "3289_0_cleanup.png": ("15c3152578b11318e64da76dff6f6a4a4cfe8f16d65c3912497c6eb58bc6f667", 132999),
        "3289_0_cleanup_no_coke_can.png": ("75ef386c090d62ebf88139fc22ac5a37cfe262c83e43f604cbdec10f3103e89f", 131972),
        "73_table.png": ("054648b667f0f7c53396464e04febda22bbe1c333e94c34894c693c9c3ad862e", 95416),
        "73_table_brighter.png": ("67136abbff8460b8eebf184deb6b04a9358d7f9acab9fddd9ffc9e89008034df", 106372),
        "73_table_darker.png": ("047c47e4d80ba58fcc88afa2820454c75a603f7699c21a4d1d396476c205846e", 94930),
        "805_0_cleanup.png": ("5b6209e95651d9511aa910cffe25f48c76e1a15ea49db68ccb6961d9ff867fd5", 117834),
        "805_0_cleanup_no_coke_can.png": ("6dbf284cf9db9e7d4f02109072678d03a6c5a1feed5b4454a9ed7dae36c01d9e", 116257),
        "another_counter_1.png": ("2b8d0f3a11ce219e4da0f500355523a38fd55670e34e623e1745add458a5d87d", 250602),
    },
    "data/real_inpainting/move_near_real_obj_variants": {
        "move_near_real_1_1.png": ("99e0629eef54b506b8a2e41d0124b1a7baad49fd22520909f450e01bec9ab21a", 101688),
        "move_near_real_1_2.png": ("bf96366fd2dd3e2dc56ebe75d06acae899dcb4c0fd0b9ece1edf4e1a2993463c", 105612),
        "move_near_real_2_1.png": ("0552aeda674d32a2aec9754bdd129b937ee228d7980ba49ab85e8797539a5ed3", 101261),
        "move_near_real_2_2.png": ("63de480d13a138d45482b6b76a7ed39a1dc54114b3f05f861c290188b7592f7f", 102451),
        "move_near_real_3_1.png": ("2ac1342b28b614c07c30559e8d933d07112c5d09691aa3765f07c4c5c350f092", 102705),
        "move_near_real_3_2.png": ("18fd552da3d3017fda0e9aebf25faa4004ad937bb62fe8cda41346349bcb988d", 104991),
        "move_near_real_4_1.png": ("a71047738d842f1583f2971f5a86ae25831960c1e0d550cd8113b58b90d474b6", 103064),
        "move_near_real_4_2.png": ("dc621f76466a78939eed7fe69b220a565000e62b7a37798dcb19b87cb55df47f", 103401),
        "move_near_real_5_1.png": ("15dab9a85b392fb5c765c696bcc5b8dcc23443e09a259f1f79b4e309e172564a", 102230),
        "move_near_real_5_2.png": ("65fa779f090f263280b25522ef9cbb80572cc43cc913671a514d9141ef1ec399", 102087),
    },
    "data/real_inpainting/pick_coke_can_real_misc": {
        "google_coke_can_real_eval_1_brighter.png":
            ("50069d8151daf35282974f4a1a11703fb4d302891ebebf22e09b1c09b16764b8", 108953),
        "google_coke_can_real_eval_1_darker.png":
            ("162b638a5a016cf340696c8792803bddc0b27cce8096576e169072536525a23c", 97363),
        "google_coke_can_real_eval_2.png": ("3233c5a9bb292f6e44170997710db02436dc1f746673de2c7286a818845fba9a", 98729),
        "google_horizontal_coke_can_a1.png":
            ("587ad23a9d592d4e1dc1a7aa7f8866ccc492579c019f4c92255cc8cb9ca76d91", 70802),
        "google_horizontal_coke_can_a1_bluegripper.png":
            ("5267f94d238a8ab8c32fa3b0356e0ace777406e9d22c0e348ac67c77812a1b82", 75448),
        "google_horizontal_coke_can_a2.png":
            ("ccc60afd4fe2444a1022d281e3570b5a1fd350e4037166cbb5c06d99585dacb6", 69443),
        "google_horizontal_coke_can_b0_cleanup.png":
            ("dc011e1fcc2aee930e1a473a0ec83e9b01395e76b108166b58aafb120113718d", 94579),
        "google_standing_coke_can_c0_cleanup.png":
            ("0277c973647a071bd923c7aaea05b85f2b8dc97055c2e190075a4a484829f427", 101715),
        "google_vertical_coke_can_a0_cleanup.png":
            ("7a8da0da3d13196d4834c8b851fa6ee07d4d86eb8dc17bbed09cd6bb3a9d961a", 96933),
        "google_vertical_coke_can_a0_cleanup_no_coke_can.png":
            ("4218cc93e73c97fb4c275ec1c015fc51ae5c4d5d0c3ea9018bef31d0b71a87ba", 96389),
        "google_vertical_coke_can_d4_cleanup.png":
            ("0f03c31197b2ca8079c8b48827f163a16610c5600675dc6c54137d0f0d29d36c", 92779),
    },
}


def _by_path(root: str, by_folder: dict[str, dict[str, tuple[str, int]]]) -> dict[str, tuple[str, int]]:
    """Folder -> file name -> entry, as path from the repository root -> entry."""
    return {"/".join(p for p in (root, folder, name) if p): entry
            for folder, files in by_folder.items() for name, entry in files.items()}


# path -> (sha256, size in bytes), sorted by path
FILES: dict[str, tuple[str, int]] = dict(sorted({**_by_path("", SCENE_FILES_BY_FOLDER),
                                                 **_by_path(ROBOT_DESCRIPTION, ROBOT_FILES_BY_FOLDER)}.items()))

# Files the port needs that the shared ManiSkill2_real2sim copy lacks (same pinned commit, sha256 of the
# blob at COMMIT): mk_station3.urdf's tabletop visual. Without it the mk_station3 variant is left out.
VARIANT_AGG_EXTRA_FILES: dict[str, tuple[str, int]] = {
    "data/custom/models/stone_tabletop.glb":
        ("b38a4237c15dd2c74812abf9d134c0d149002fd583358e16661e239201846c7d", 250560),
}
