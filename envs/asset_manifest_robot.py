"""sha256 and size of the Google robot's description files (URDFs, meshes, textures) the SIMPLER port uses.

Part of the asset manifest (`asset_manifest.py`, which has the commit and the full path -> entry map), by
folder under `ROBOT_DESCRIPTION`.
"""
ROBOT_DESCRIPTION = "mani_skill2_real2sim/assets/descriptions/googlerobot_description"

# folder under ROBOT_DESCRIPTION ("" = itself) -> file name -> (sha256, size in bytes)
ROBOT_FILES_BY_FOLDER: dict[str, dict[str, tuple[str, int]]] = {
    "3obj": {
        "link_base.3obj.mtl": ("e9ee4fb4371fd1855408dbf10d0e06af604d86b56b1719ee7e64b06a01aed8cb", 147),
        "link_base.3obj.obj": ("2fecd3d03666f95ff7dd01daad29a5799469eef0c51d0f2afc4e7225cb34c5dc", 137615),
        "link_base.glb": ("922dcf219018381dfe1afeb238a49135bbad0478230747e4f01d518a4eda7600", 172928),
        "link_base.mtl": ("47fe534b6a89762ee0142a7b80d50a0e5a87f15b5025825d2c0bde9ed1468d08", 137),
        "link_base.obj": ("304440a416ed3c071c26af07ed09237d9b80180a4fcfab8c30a236a8dfeea063", 219853),
        "link_base_no_wheel.mtl": ("2445fca565dd3765dbab1d1fc3c70ff951c40dc4b750ed1c5d641a4d8d8eda07", 236),
        "link_base_no_wheel.obj": ("4f60a3d7e13526229518df8e6f9758636ed19c1d72dec8de51e2af7534feae6e", 108489),
        "link_bicep.3obj.mtl": ("75b41a94f1fe7397a4b021c20a89573f438dff3779ce737562e6e664ffec8955", 148),
        "link_bicep.3obj.obj": ("c05ff716758d7961df3582900c799c35e3314a5911e93ceb899729621798a1ee", 54559),
        "link_bin.3obj.mtl": ("29c976fe4dea13143696a46bacb39fc82ee2b98ea8a44fff1d3df54e629e12fb", 146),
        "link_bin.3obj.obj": ("dd78790f392018f9f6cdf2a37e38a8555a26b7ff858c2363e967a304f9f1f524", 29436),
        "link_elbow.3obj.mtl": ("ed45bfd9126459aebb22a9f8ff072bc22c7a52a0e73a6dac80e26211a36f4090", 148),
        "link_elbow.3obj.obj": ("52ae77af4144a78a41d0d4a197d5f9d21d95c606d2fc0a7e11c648cc865563cd", 53913),
        "link_finger_base_diffuse.png": ("62d70b98b61d0dd0ee991bf0959f3800559cb28e5a4eb07882befd55e35d4cab", 29558),
        "link_finger_base_simplified.3obj.mtl":
            ("4f7a4794582562135c7d6b94f15e9caebe65158ba7d9abec5b8b7d6be1281857", 177),
        "link_finger_base_simplified.3obj.obj":
            ("1ba2d7710df21654b5db94c025a311994ea72c8297e227a607451a977dfc41f3", 304872),
        "link_finger_nail.3obj.mtl": ("624758f243a0efec0e032fe90b6ec7bd3cf1dde4d99c07d05c931148ff0a5464", 166),
        "link_finger_nail.3obj.obj": ("4e5152d947c9e0e2a28d7e8f1fc348a4b9e34585c2b6ca1eea731de872f36feb", 12940),
        "link_finger_nail_diffuse.png": ("121d520ddbf455b9e75806d8148f7581c2b5fb93ed3e8b5845e3bd867d0c6333", 382),
        "link_finger_tip_diffuse.png": ("2590d99286cf8cf5de280e78148b855632a32e362a892f23d396f35246d10a56", 5895),
        "link_finger_tip_simplified.3obj.mtl":
            ("25318aef1acdbeb025e63fae107d35f58c47000d2e7fba44e9aaeb3d635f0724", 164),
        "link_finger_tip_simplified.3obj.obj":
            ("c2998539fa6e32167c55c672692d98caddf55c4bf9c9e83771b5d51a72d08f12", 245739),
        "link_forearm.3obj.mtl": ("2ffa3f54f6aa7cfc2509c8dcfa67cc812e897d2fdff86426771c87a086eac4d9", 150),
        "link_forearm.3obj.obj": ("1be7b9200631f5ab6b17f1a071de17e9f3a280491d832049d985d6c4c80187c8", 51478),
        "link_gripper.3obj.mtl": ("7014ff0b9101117c7a237f6d305a8932bfda3072c70b8f2600c302e2102a4a82", 150),
        "link_gripper.3obj.obj": ("50bbc7904e03bd5b09d9988d69ba3d6f9df256ef753156aa37d029bc01cb2040", 64190),
        "link_head_pan.3obj.mtl": ("f80e61538906fd51e96e6f7165ce360c24975126b6e8412fc3c0c3ea1e935400", 151),
        "link_head_pan.3obj.obj": ("64af1477e65c30d4c8ab9cf82f4c0d5d4b3ae85b68cc4665b7de684ebad6383a", 38418),
        "link_head_tilt.3obj.mtl": ("28d60b535bbfcd78bf4a07a1009e639d4c18bfcd3bef0974ce34d73511fc2866", 152),
        "link_head_tilt.3obj.obj": ("92e1e6ee0e2f648a59006f54cb777dc64660ce48c6a873f3682ae28fc3d8e189", 80418),
        "link_head_tilt.mtl": ("47fe534b6a89762ee0142a7b80d50a0e5a87f15b5025825d2c0bde9ed1468d08", 137),
        "link_head_tilt.obj": ("c7df739db527aab4cb2560c7bdb2d2df58d694b7c45ba8bc598bbf8fe048b899", 82545),
        "link_shoulder.3obj.mtl": ("71be6804e67584d36e4826ff6c09caa3694e7af3724197e756569b6d5e1316f0", 151),
        "link_shoulder.3obj.obj": ("571fab77c96300db0568df0d40cbbab54d5f6fa15bca802c5e88a311f0669219", 107410),
        "link_torso.3obj.mtl": ("bf5fba19cf3f5f3064af9cf3b025a0b3d244d0ac21ea54c501db90c987626bb8", 148),
        "link_torso.3obj.obj": ("18a6625393734dc119074e11dc5c67edf028049f1f29189f57eb1ab599b7ea40", 38440),
        "link_wheel.3obj.mtl": ("64784429e00cee65e79a5715c5fe9f19bee2753d5cbf22d4e6480f9e25d5bd16", 148),
        "link_wheel.3obj.obj": ("cb7a4c554db06d3741ef5f233cf535674f876ddfda1da1df48c25873f2361e8e", 50053),
        "link_wrist.3obj.mtl": ("99e5dbd7d0af36394264219a71ab3e43368656f7146c54f5a8f6b170b38e67ba", 148),
        "link_wrist.3obj.obj": ("5db97cb22075951f626b174b371c8e27b61d92f3b84ccbbef7243771d5c6da5b", 35803),
        "meta_ao_roughness_metalness.png": ("2fee1de0e7112c27b9e52b8c246b06be37d11b4b83aaa44958df3476dfe768ed", 137830),
        "meta_diffuse.png": ("6f5b97ff641f7fe9f19040855e701c9d20d4572658df1705c5bffb75388b214b", 123227),
        "meta_emissive.png": ("049f315c2cacf071e3e1b6e6a51ecd2209981b26da9a2067c352b328853ac70b", 3998),
        "meta_normal.png": ("0a6657b716e61ac06e2f57ae3bd469c4d943562008954ff5c46849042a66040d", 2314967),
    },
    "3obj_recolor_cabinet_visual_matching_1": {
        "link_bicep.3obj.mtl": ("75b41a94f1fe7397a4b021c20a89573f438dff3779ce737562e6e664ffec8955", 148),
        "link_bicep.3obj.obj": ("c05ff716758d7961df3582900c799c35e3314a5911e93ceb899729621798a1ee", 54559),
        "link_elbow.3obj.mtl": ("ed45bfd9126459aebb22a9f8ff072bc22c7a52a0e73a6dac80e26211a36f4090", 148),
        "link_elbow.3obj.obj": ("52ae77af4144a78a41d0d4a197d5f9d21d95c606d2fc0a7e11c648cc865563cd", 53913),
        "link_finger_base_diffuse.png": ("384354ae422d3f3def230ace12a3fc795528ff338ac33777ccf392341e4f13d4", 24820),
        "link_finger_base_simplified.3obj.mtl":
            ("4f7a4794582562135c7d6b94f15e9caebe65158ba7d9abec5b8b7d6be1281857", 177),
        "link_finger_base_simplified.3obj.obj":
            ("1ba2d7710df21654b5db94c025a311994ea72c8297e227a607451a977dfc41f3", 304872),
        "link_finger_tip_diffuse.png": ("39fdda78c1dd4672bea26940dfc52dadc347fc8f0e56525e1981e2a34ae12b45", 8007),
        "link_finger_tip_simplified.3obj.mtl":
            ("25318aef1acdbeb025e63fae107d35f58c47000d2e7fba44e9aaeb3d635f0724", 164),
        "link_finger_tip_simplified.3obj.obj":
            ("c2998539fa6e32167c55c672692d98caddf55c4bf9c9e83771b5d51a72d08f12", 245739),
        "link_forearm.3obj.mtl": ("2ffa3f54f6aa7cfc2509c8dcfa67cc812e897d2fdff86426771c87a086eac4d9", 150),
        "link_forearm.3obj.obj": ("1be7b9200631f5ab6b17f1a071de17e9f3a280491d832049d985d6c4c80187c8", 51478),
        "link_gripper.3obj.mtl": ("7014ff0b9101117c7a237f6d305a8932bfda3072c70b8f2600c302e2102a4a82", 150),
        "link_gripper.3obj.obj": ("50bbc7904e03bd5b09d9988d69ba3d6f9df256ef753156aa37d029bc01cb2040", 64190),
        "link_shoulder.3obj.mtl": ("71be6804e67584d36e4826ff6c09caa3694e7af3724197e756569b6d5e1316f0", 151),
        "link_shoulder.3obj.obj": ("571fab77c96300db0568df0d40cbbab54d5f6fa15bca802c5e88a311f0669219", 107410),
        "link_wrist.3obj.mtl": ("99e5dbd7d0af36394264219a71ab3e43368656f7146c54f5a8f6b170b38e67ba", 148),
        "link_wrist.3obj.obj": ("5db97cb22075951f626b174b371c8e27b61d92f3b84ccbbef7243771d5c6da5b", 35803),
        "meta_ao_roughness_metalness.png": ("2fee1de0e7112c27b9e52b8c246b06be37d11b4b83aaa44958df3476dfe768ed", 137830),
        "meta_diffuse.png": ("9bfd86ad931ea9d687e4354b9b5d375a0119a5efebf9ba92dc58a2b1412c1f1b", 117684),
        "meta_emissive.png": ("049f315c2cacf071e3e1b6e6a51ecd2209981b26da9a2067c352b328853ac70b", 3998),
        "meta_normal.png": ("0a6657b716e61ac06e2f57ae3bd469c4d943562008954ff5c46849042a66040d", 2314967),
    },
    "3obj_recolor_cabinet_visual_matching_gripper_only": {
        "link_finger_base_diffuse.png": ("384354ae422d3f3def230ace12a3fc795528ff338ac33777ccf392341e4f13d4", 24820),
        "link_finger_base_simplified.3obj.mtl":
            ("4f7a4794582562135c7d6b94f15e9caebe65158ba7d9abec5b8b7d6be1281857", 177),
        "link_finger_base_simplified.3obj.obj":
            ("1ba2d7710df21654b5db94c025a311994ea72c8297e227a607451a977dfc41f3", 304872),
        "link_finger_tip_diffuse.png": ("39fdda78c1dd4672bea26940dfc52dadc347fc8f0e56525e1981e2a34ae12b45", 8007),
        "link_finger_tip_simplified.3obj.mtl":
            ("25318aef1acdbeb025e63fae107d35f58c47000d2e7fba44e9aaeb3d635f0724", 164),
        "link_finger_tip_simplified.3obj.obj":
            ("c2998539fa6e32167c55c672692d98caddf55c4bf9c9e83771b5d51a72d08f12", 245739),
    },
    "3obj_recolor_sim": {
        "link_bicep.3obj.mtl": ("75b41a94f1fe7397a4b021c20a89573f438dff3779ce737562e6e664ffec8955", 148),
        "link_bicep.3obj.obj": ("c05ff716758d7961df3582900c799c35e3314a5911e93ceb899729621798a1ee", 54559),
        "link_elbow.3obj.mtl": ("ed45bfd9126459aebb22a9f8ff072bc22c7a52a0e73a6dac80e26211a36f4090", 148),
        "link_elbow.3obj.obj": ("52ae77af4144a78a41d0d4a197d5f9d21d95c606d2fc0a7e11c648cc865563cd", 53913),
        "link_finger_base_diffuse.png": ("326381f48d106f06b5fcebe55e1ab27d3e24416bd6c71127a47915b8901ac5c5", 33012),
        "link_finger_base_simplified.3obj.mtl":
            ("4f7a4794582562135c7d6b94f15e9caebe65158ba7d9abec5b8b7d6be1281857", 177),
        "link_finger_base_simplified.3obj.obj":
            ("1ba2d7710df21654b5db94c025a311994ea72c8297e227a607451a977dfc41f3", 304872),
        "link_finger_tip_diffuse.png": ("3ea5b534ec318e0c838faeb56041682d24b4735d93ad9f3ff80754ee28f022d6", 8160),
        "link_finger_tip_simplified.3obj.mtl":
            ("25318aef1acdbeb025e63fae107d35f58c47000d2e7fba44e9aaeb3d635f0724", 164),
        "link_finger_tip_simplified.3obj.obj":
            ("c2998539fa6e32167c55c672692d98caddf55c4bf9c9e83771b5d51a72d08f12", 245739),
        "link_forearm.3obj.mtl": ("2ffa3f54f6aa7cfc2509c8dcfa67cc812e897d2fdff86426771c87a086eac4d9", 150),
        "link_forearm.3obj.obj": ("1be7b9200631f5ab6b17f1a071de17e9f3a280491d832049d985d6c4c80187c8", 51478),
        "link_gripper.3obj.mtl": ("7014ff0b9101117c7a237f6d305a8932bfda3072c70b8f2600c302e2102a4a82", 150),
        "link_gripper.3obj.obj": ("50bbc7904e03bd5b09d9988d69ba3d6f9df256ef753156aa37d029bc01cb2040", 64190),
        "link_shoulder.3obj.mtl": ("71be6804e67584d36e4826ff6c09caa3694e7af3724197e756569b6d5e1316f0", 151),
        "link_shoulder.3obj.obj": ("571fab77c96300db0568df0d40cbbab54d5f6fa15bca802c5e88a311f0669219", 107410),
        "link_wrist.3obj.mtl": ("99e5dbd7d0af36394264219a71ab3e43368656f7146c54f5a8f6b170b38e67ba", 148),
        "link_wrist.3obj.obj": ("5db97cb22075951f626b174b371c8e27b61d92f3b84ccbbef7243771d5c6da5b", 35803),
        "meta_ao_roughness_metalness.png": ("2fee1de0e7112c27b9e52b8c246b06be37d11b4b83aaa44958df3476dfe768ed", 137830),
        "meta_diffuse.png": ("483a4af98c552936872190703d124193f7303d036157d15d8179b445d6f2f3a6", 87975),
        "meta_diffuse_bkup.png": ("11e06af626420224f60a5809f7f3a5f956e3dedcd707d6411129352049977ffd", 87525),
        "meta_diffuse_bkup2.png": ("483a4af98c552936872190703d124193f7303d036157d15d8179b445d6f2f3a6", 87975),
        "meta_emissive.png": ("049f315c2cacf071e3e1b6e6a51ecd2209981b26da9a2067c352b328853ac70b", 3998),
        "meta_normal.png": ("0a6657b716e61ac06e2f57ae3bd469c4d943562008954ff5c46849042a66040d", 2314967),
    },
    "3obj_recolor_tabletop_visual_matching_1": {
        "link_bicep.3obj.mtl": ("75b41a94f1fe7397a4b021c20a89573f438dff3779ce737562e6e664ffec8955", 148),
        "link_bicep.3obj.obj": ("c05ff716758d7961df3582900c799c35e3314a5911e93ceb899729621798a1ee", 54559),
        "link_elbow.3obj.mtl": ("ed45bfd9126459aebb22a9f8ff072bc22c7a52a0e73a6dac80e26211a36f4090", 148),
        "link_elbow.3obj.obj": ("52ae77af4144a78a41d0d4a197d5f9d21d95c606d2fc0a7e11c648cc865563cd", 53913),
        "link_finger_base_diffuse.png": ("384354ae422d3f3def230ace12a3fc795528ff338ac33777ccf392341e4f13d4", 24820),
        "link_finger_base_simplified.3obj.mtl":
            ("4f7a4794582562135c7d6b94f15e9caebe65158ba7d9abec5b8b7d6be1281857", 177),
        "link_finger_base_simplified.3obj.obj":
            ("1ba2d7710df21654b5db94c025a311994ea72c8297e227a607451a977dfc41f3", 304872),
        "link_finger_tip_diffuse.png": ("39fdda78c1dd4672bea26940dfc52dadc347fc8f0e56525e1981e2a34ae12b45", 8007),
        "link_finger_tip_simplified.3obj.mtl":
            ("25318aef1acdbeb025e63fae107d35f58c47000d2e7fba44e9aaeb3d635f0724", 164),
        "link_finger_tip_simplified.3obj.obj":
            ("c2998539fa6e32167c55c672692d98caddf55c4bf9c9e83771b5d51a72d08f12", 245739),
        "link_forearm.3obj.mtl": ("2ffa3f54f6aa7cfc2509c8dcfa67cc812e897d2fdff86426771c87a086eac4d9", 150),
        "link_forearm.3obj.obj": ("1be7b9200631f5ab6b17f1a071de17e9f3a280491d832049d985d6c4c80187c8", 51478),
        "link_gripper.3obj.mtl": ("7014ff0b9101117c7a237f6d305a8932bfda3072c70b8f2600c302e2102a4a82", 150),
        "link_gripper.3obj.obj": ("50bbc7904e03bd5b09d9988d69ba3d6f9df256ef753156aa37d029bc01cb2040", 64190),
        "link_shoulder.3obj.mtl": ("71be6804e67584d36e4826ff6c09caa3694e7af3724197e756569b6d5e1316f0", 151),
        "link_shoulder.3obj.obj": ("571fab77c96300db0568df0d40cbbab54d5f6fa15bca802c5e88a311f0669219", 107410),
        "link_wrist.3obj.mtl": ("99e5dbd7d0af36394264219a71ab3e43368656f7146c54f5a8f6b170b38e67ba", 148),
        "link_wrist.3obj.obj": ("5db97cb22075951f626b174b371c8e27b61d92f3b84ccbbef7243771d5c6da5b", 35803),
        "meta_ao_roughness_metalness.png": ("2fee1de0e7112c27b9e52b8c246b06be37d11b4b83aaa44958df3476dfe768ed", 137830),
        "meta_diffuse.png": ("e600d3bf7251fafa1ae1ee3959ace59dca0bbac6223d66247f2cddac4e6444d1", 87809),
        "meta_diffuse_bkup.png": ("7565e61d43ed22be84554559e1d458c4994b88c56093e86dcbaf763021b83841", 89196),
        "meta_emissive.png": ("049f315c2cacf071e3e1b6e6a51ecd2209981b26da9a2067c352b328853ac70b", 3998),
        "meta_normal.png": ("0a6657b716e61ac06e2f57ae3bd469c4d943562008954ff5c46849042a66040d", 2314967),
    },
    "3obj_recolor_tabletop_visual_matching_2": {
        "link_bicep.3obj.mtl": ("75b41a94f1fe7397a4b021c20a89573f438dff3779ce737562e6e664ffec8955", 148),
        "link_bicep.3obj.obj": ("c05ff716758d7961df3582900c799c35e3314a5911e93ceb899729621798a1ee", 54559),
        "link_elbow.3obj.mtl": ("ed45bfd9126459aebb22a9f8ff072bc22c7a52a0e73a6dac80e26211a36f4090", 148),
        "link_elbow.3obj.obj": ("52ae77af4144a78a41d0d4a197d5f9d21d95c606d2fc0a7e11c648cc865563cd", 53913),
        "link_finger_base_diffuse.png": ("2c6b45702a2e11fb3de0e4d5277b9b476703d97033773762b7151c33a3fb9d70", 27202),
        "link_finger_base_simplified.3obj.mtl":
            ("4f7a4794582562135c7d6b94f15e9caebe65158ba7d9abec5b8b7d6be1281857", 177),
        "link_finger_base_simplified.3obj.obj":
            ("1ba2d7710df21654b5db94c025a311994ea72c8297e227a607451a977dfc41f3", 304872),
        "link_finger_tip_diffuse.png": ("933683135ab58c7a5f090a99c935a344170441f4b3b3050c71287cafec47c74e", 8542),
        "link_finger_tip_simplified.3obj.mtl":
            ("25318aef1acdbeb025e63fae107d35f58c47000d2e7fba44e9aaeb3d635f0724", 164),
        "link_finger_tip_simplified.3obj.obj":
            ("c2998539fa6e32167c55c672692d98caddf55c4bf9c9e83771b5d51a72d08f12", 245739),
        "link_forearm.3obj.mtl": ("2ffa3f54f6aa7cfc2509c8dcfa67cc812e897d2fdff86426771c87a086eac4d9", 150),
        "link_forearm.3obj.obj": ("1be7b9200631f5ab6b17f1a071de17e9f3a280491d832049d985d6c4c80187c8", 51478),
        "link_gripper.3obj.mtl": ("7014ff0b9101117c7a237f6d305a8932bfda3072c70b8f2600c302e2102a4a82", 150),
        "link_gripper.3obj.obj": ("50bbc7904e03bd5b09d9988d69ba3d6f9df256ef753156aa37d029bc01cb2040", 64190),
        "link_shoulder.3obj.mtl": ("71be6804e67584d36e4826ff6c09caa3694e7af3724197e756569b6d5e1316f0", 151),
        "link_shoulder.3obj.obj": ("571fab77c96300db0568df0d40cbbab54d5f6fa15bca802c5e88a311f0669219", 107410),
        "link_wrist.3obj.mtl": ("99e5dbd7d0af36394264219a71ab3e43368656f7146c54f5a8f6b170b38e67ba", 148),
        "link_wrist.3obj.obj": ("5db97cb22075951f626b174b371c8e27b61d92f3b84ccbbef7243771d5c6da5b", 35803),
        "meta_ao_roughness_metalness.png": ("2fee1de0e7112c27b9e52b8c246b06be37d11b4b83aaa44958df3476dfe768ed", 137830),
        "meta_diffuse.png": ("bc439de978b48ee930821bd9e14ccbf6f80c5374e521558c416f623490953ee7", 86845),
        "meta_emissive.png": ("049f315c2cacf071e3e1b6e6a51ecd2209981b26da9a2067c352b328853ac70b", 3998),
        "meta_normal.png": ("0a6657b716e61ac06e2f57ae3bd469c4d943562008954ff5c46849042a66040d", 2314967),
    },
    "coarse_meshes": {
        "link_base.obj": ("11bdd7cd31c27b710c84293686d34ee7830713af643d2bbe7a60801aac6a814a", 227982),
        "link_base_0.glb": ("2ff7c2d354ca23d031c05f1ab106c64fabdcdcc21e46d92f550df31bc3e3339a", 17240),
        "link_base_1.glb": ("d8f4cf1e722b061a8cd0c9df1006e4b8486f50bc7b163da2a640387e9f745816", 128672),
        "link_base_2.glb": ("6081ef0a739f538ff8fdcc2b29e9c0324928ae7af56bb8db51fd709231998d5d", 129836),
        "link_base_3.glb": ("254d6300453b41cba7259307586ce55b8416a80861cea125d8baf700fc282243", 136256),
        "link_base_4.glb": ("594dcc696cb7e3c7e1b147c7b64e75cd0fc61106babe1cfb1e36d04c9c7f65a3", 133440),
        "link_base_5.glb": ("8de3d8d288c3f7adaf0cc39603d4a9ab7390c07cb5eae0cfe54fc1c5254aa7e7", 126896),
        "link_base_part_0_vhacd.obj": ("a1c7d051212e36bbad8782d2247245cda28fa9c72cd89704859b0dec07f7fd71", 3271),
        "link_base_part_1_collision.obj": ("46a44566a30405816f35949374a30efc58c5f06430bc1c4432c139a3ec808021", 38341),
        "link_base_part_1_vhacd.obj": ("051aab424dbe5f9e401fcdc620334a644798937cf47764e270427d8599d435b3", 20806),
        "link_bicep.obj": ("7a58fa42a4c327e5a2723f5af4dff202882b1b2d05a7987ab8514dd15dcbd73d", 165692),
        "link_bicep_vhacd.obj": ("286a4cba33d69f8352e895c0bd2501b1f5d119ea9dc8cb12e37ecd15ad4364c6", 6681),
        "link_bin.obj": ("f7ac8c44829811678b0fa05afa18291bfa0784fea007a1d777206674c83d1ba8", 42649),
        "link_bin_vhacd.obj": ("c8447a04d1590ed914801342b8733a47593a7d91d61c4b2cc36a3b1d104c5ca0", 24341),
        "link_elbow.obj": ("47b96cb1f0ea5af8486043b179fcc49603a5d0fe04bf286a70f0ae8efe429ab9", 169300),
        "link_elbow_vhacd.obj": ("557cfc6780f5816a61f7e64adbb57eae9a612753368695bc6d90b0bc713787ac", 6743),
        "link_finger_base_boxified.obj": ("15e86ae266fad64055e0c8cb628f613cea65d17fd1bbfb006e9a3aa2d856e36e", 1014),
        "link_finger_base_simplified.mtl": ("d469dcec38364985ab38c021ea9a29807a0c2048afe81b9d7402839be8f37590", 171),
        "link_finger_base_simplified.obj": ("05bce36d3856a3659db0208a07584869012db48b374e94c51fc785b765c40ddc", 276307),
        "link_finger_distal_boxified_nail.mtl":
            ("cf40b53c8fa84551c9ad184d4b689f04bd6619fbaae71b8bc688af0d8f14f0d7", 186),
        "link_finger_left.obj": ("ea74306aaca4c5e29570d3bb2f994fedde4c77a3b0c4880781ae2d23f3abd341", 20641),
        "link_finger_left_vhacd.obj": ("3066e82cd6a2b970f8ebf1aa9b8648cf507065f32fe5ae1996f2b98452f07ae2", 6613),
        "link_finger_nail.obj": ("93db10e8937d3261a8b547bec07804d903450e091c72b1a7b4fc48eee83dbb8a", 3140),
        "link_finger_nail_simplified.mtl": ("ad9b72778223691fec7bba6e8ad8f6dacc1f701273080960d7665c78f2ea6061", 147),
        "link_finger_right.obj": ("db2ebaad97dc62ee304a3229211951ebc0b354a0fdc55afa7ed4d6ab36e0eef2", 20376),
        "link_finger_right_vhacd.obj": ("c938162119d0bfad44a60f8c626be518b1dd5f739fa98862c201f1b1673479bc", 6596),
        "link_finger_tip_boxified.obj": ("91821edfc53fd2aa44255f8143fb7eb2fd1af12d89f3e5801548b781d70624de", 2183),
        "link_finger_tip_simplified.mtl": ("e21b3048bddd429e2383852b70dd680a60cd1331af89a0bfecc22e9c1c3432a4", 440),
        "link_finger_tip_simplified.obj": ("3626c43bdc3f3bf5a24800f2a23096996b398d514b30c3bcdd74984256b79e13", 223918),
        "link_forearm.obj": ("93d429dfc1f612fa99e8351e5eaf951e15f64bd257dae7eb33f84c33b9c1dfb2", 61157),
        "link_forearm_vhacd.obj": ("1d06877d686951eba3301ee2b4aace0b3023ac0060fe0a6fef67c4c8b5437294", 10295),
        "link_gripper.obj": ("8ffeba927bf0ac390c3b6bc150dfaabd5d19f61522f803ffe9abdbff8446f58b", 103063),
        "link_gripper_vhacd.obj": ("3bbe3e5f1c512ea137db775c874303fc25720fc4e8fa20a4d00024ec61698eb4", 3236),
        "link_head_pan.obj": ("c47272c13f8959530332dfb06e63f6c80015bde5100fbb151f494426adacb791", 26956),
        "link_head_pan_vhacd.obj": ("6607d30ed81e836b1c5e1249fb7f5779cd9b69c5f5a18250fee78b7d1b70e961", 6666),
        "link_head_tilt.obj": ("44bfb375dcb323a0e377af6f56112d644c02a1f8e2955c9cf9ed41a1ed1be2d6", 110623),
        "link_head_tilt_collision.obj": ("87a4713924db34c143d570b8928be33ccd6e3ac924dc9bf3361e9f12dd2482ad", 42144),
        "link_head_tilt_vhacd.obj": ("8ef91f6f8e78e0341cd4d36c115ee918582f5495f8eef7d6a450bf21eeb728ab", 12805),
        "link_rear_wheel.glb": ("ee1ccae560d15ba40adcbf3d54620b3416f5d3c5adb77375b3dc63d10beed4d9", 128216),
        "link_shoulder.obj": ("b4b9a67f01ac236b5f2d170d291728f7ae6fcf9caf747a291d333de453f69878", 81590),
        "link_shoulder_vhacd.obj": ("87c3c723424f333cf17b7279b6278a9acbc346b2110fdcea1237526790a3d0be", 6710),
        "link_torso.obj": ("921dbded59384a78f071820a334ec3a6886a4b40ce64b90b100f06a033f1b872", 44730),
        "link_torso_vhacd.obj": ("b75b4966e4fcbdc4eb00dbf4076f657bc82302a46a329bd4e85e7fb5a8f1fa39", 6722),
        "link_wheel.obj": ("95ff4a65c3a576aa81820b25b5ef4714673a3411a6ad81b539682989502d6c28", 39532),
        "link_wheel_vhacd.obj": ("1f3bde56fe8b6f04123c2ccda8c5568c8a0955fc8e7b13716904bca4c0703db9", 17050),
        "link_wrist.obj": ("0516e1e109574cb9da3c2e4d82979c63d0674bfe711ed7f8c5c93021bfc40f2b", 52215),
        "link_wrist_vhacd.obj": ("701f71f75ac1d37da6ddf843ba357411f84ccb0fe0040aeabbb927dfdd7ffd10", 6729),
        "meta_finger_yellow.png": ("164be410a13c499642c747f51c9b75dfded726f725e6d451da13131c3388b024", 2186),
    },
    "": {
        "google_robot_meta_sim_fix_fingertip.urdf":
            ("e80eac082e870627344e05c61263b18f8a980c24b19b8c6c9fba795b68f965e0", 25918),
        "google_robot_meta_sim_fix_wheel_fix_fingertip.urdf":
            ("caa6bc69c431e451c697227f4bf47ef257fdd3bab670f7db1e1d4d8b5621fb80", 25946),
        "google_robot_meta_sim_fix_wheel_fix_fingertip_recolor_cabinet_visual_matching_1.urdf":
            ("ae9d5dd48c0e44a31500f9c560caf63c118a4a50518298827dc0908361b4487b", 26285),
        "google_robot_meta_sim_fix_wheel_fix_fingertip_recolor_cabinet_visual_matching_gripper_only.urdf":
            ("97a47eaea5700d041142bfed07035557bb4a9a5da34f075ffe07f8032963a409", 26125),
        "google_robot_meta_sim_fix_wheel_fix_fingertip_recolor_sim.urdf":
            ("61d004817f17bc4d144b558154fbce9950c65fe5fef8dca160362ef39012a75d", 26065),
        "google_robot_meta_sim_fix_wheel_fix_fingertip_recolor_tabletop_visual_matching_1.urdf":
            ("978e820a8be2d769472aa00c674be78e5772225a4a296d18d479af40e2ced847", 26295),
        "google_robot_meta_sim_fix_wheel_fix_fingertip_recolor_tabletop_visual_matching_2.urdf":
            ("772df355eaf2c97dde97d04f6dfe71e8bbcd7298b90e336f3fbbbcf7d3f9e198", 26295),
    },
}
