# A small compiled model for the fuzzers' seeds (tests/fuzz/fuzz_targets.py): tests/model_factory.py's
# make_config("tiny", n_layer=1, vocab_size=16, d_model=16, headdim=8, d_state=4), random weights, compiled with
# fastmamba compile --seq-len 4 --calibration random --calibration-windows 1, then fastmamba disasm (its
# .target_digest line taken out: the text assembles for the current vc709, whatever its digest).
# fastmamba disassembly: 2 program(s), constant image 4096 bytes
.image_size 0x1000
.meta "{\"bundled\": false, \"calibration\": \"4 random tokens of seed 0\", \"config\": {\"chunk_size\": 8, \"d_conv\": 4, \"d_model\": 16, \"d_state\": 4, \"expand\": 2, \"gated_norm_eps\": 1e-05, \"headdim\": 8, \"n_layer\": 1, \"ngroups\": 1, \"nheads\": 4, \"norm_eps\": 1e-05, \"tie_embeddings\": true, \"use_conv_bias\": true, \"vocab_size\": 16}, \"format\": \"fastmamba/1\", \"model\": \"model_tiny\", \"plan\": {\"fold_norms\": true, \"format\": 1, \"head\": {\"act_scale\": 0.013442601823012917, \"block\": 16, \"dynamic\": false, \"granularity\": \"channel\", \"hlog2\": 4, \"in_type\": \"i16\", \"out_scale\": 13538.826171875, \"qmul\": 46092, \"qshift\": 25}, \"layers\": [{\"conv\": {\"fo\": 13, \"fw\": 15, \"fx\": 13, \"shift\": 15}, \"in_proj\": {\"act_scale\": 0.019016014495550303, \"block\": 16, \"dynamic\": false, \"granularity\": \"channel\", \"hlog2\": 4, \"in_type\": \"i16\", \"out_scale\": 13676.6611328125, \"qmul\": 64509, \"qshift\": 26}, \"out_proj\": {\"act_scale\": 0.02256442373504648, \"block\": 32, \"dynamic\": false, \"granularity\": \"channel\", \"hlog2\": 5, \"in_type\": \"i16\", \"out_scale\": 5938.68359375, \"qmul\": 44265, \"qshift\": 25}, \"ssm\": {\"a_frac\": 24, \"dt_frac\": 13, \"fb\": 15, \"fc\": 14, \"fd\": 24, \"fh\": 30, \"fx\": 14, \"fy\": 28}}], \"nonlinear\": \"table\", \"ranges\": {\"backbone.layers.0.mixer\": {\"A\": 3.842393816095305, \"B\": 0.5979666709899902, \"C\": 1.2400959730148315, \"D\": 1.6956236362457275, \"dt\": 0.6106502413749695, \"dt_raw\": 2.732499361038208, \"state\": 0.09422219544649124, \"x\": 1.453978180885315, \"y\": 2.4306938648223877}, \"backbone.layers.0.mixer.conv1d\": {\"w\": 0.5998058319091797, \"x\": 3.112191677093506, \"y\": 2.102860689163208}, \"backbone.layers.0.mixer.in_proj\": {\"w\": 0.8562052845954895, \"x\": 2.3958332538604736, \"xr\": 2.4150397777557373}, \"backbone.layers.0.mixer.out_proj\": {\"w\": 0.5188211798667908, \"x\": 5.517552852630615, \"xr\": 2.865694761276245}, \"lm_head\": {\"w\": 1.4065451622009277, \"x\": 2.420224666595459, \"xr\": 1.7072055339813232}}}, \"seq_len\": 4, \"target\": \"vc709\"}"
.data addr=0x0 hex=851b10bf8a8013bfd64b00be5d255ebe1545d93e8327b13e6dcc21bec15f87bf3801253ef4b421bfff30333ebbc31d3e776f753d936b1e3f8ef20e3f7c36fdbd
.data addr=0x40 hex=c2232dbf461459bf0410913e5d23cb3e8b4d993e5b0d47bfcac62ebe4e2f6d3f6b0cc03e2be395beeb8eb1bda4e1bb3dc0d6313f000d4b3f9c40f23e33fbd7be
.data addr=0x80 hex=c8139dbe6467813c28407cbe7060fe3dd01f613ed637663df80aa43e3cdf613eb98751bd9cddca3e534f14be1712d73c2fda853e5557933fb7043cbf9e184bbf
.data addr=0xc0 hex=9f4facbede71df3ef415073faa1cb63d10ddebbd089448be5d158b3e17524abe947664be2478be3e75af423fad45da3fd9fd43bf23f81dbfc2ec683ffc308dbe
.data addr=0x100 hex=3eba91be3f83eb3e392f0e3f981a253fce343dbf8b4da43fc23c72be4fcd2b3ec18d50bf00bc8cbed6ac75be42d67fbed09208bf57b60e3f2c0c90bdde45ce3e
.data addr=0x140 hex=5c2d3fbd86e2af3ed69bd6be25c9e9395f86d73e47d14cbe170d053fd85f373eace7fbbd6e5c933f31db70bf90aecbbcdcc105bf3dddf4beb458893c3cc8b53e
.data addr=0x180 hex=c5ab523f041a2ebfe16a303e0d16853ead40a7bf132659bf37b8e9bd43560f3e46dafc3def761d3d190f2d3e59a7683e0ff4693efa88ddbecc03c83e1242edbe
.data addr=0x1c0 hex=f015e0bd1cd89bbf555415bd55358bbc9967f63e2ec6323eefe4ebbe812ce6bc2b699fbefe6c6dbef7fc753f731a4ebe95c07d3da017153f3562ec3ee492313f
.data addr=0x200 hex=ea24e2bed47b56be1c09cebecbcb903edb409c3e5c0b6f3e22af793f9d1308bff75c1ebd6a626e3dc80f98be0a391fbff11551bd504b04bf321220be30affb3d
.data addr=0x240 hex=bdef04beb25a723d74d0f93da211153f41c0133e24f0453eb3e3cdbdb48371bdd4cfc43d13acc5be843e73bf4fd0853d9c4cb4be1b23213e9a2ba13d434e453e
.data addr=0x280 hex=dc96f73e99b7fdbe076c1a3efac85bbdda9aff3e8b577fbe2ad8c23ef7489e3ef9ca203ef773da3d36dd75bd2d8e383e32c920be1b130abf0897f63d93b732bf
.data addr=0x2c0 hex=887607bd517a37be41e147bfce9335be96600a3f2fa2863db469493fcb0bc83e77110abf8c8db8beef423c3f08200d3e2ab2aa3e5290febe143d18bfdf1419bf
.data addr=0x300 hex=eb438fbe9c91883e7153503e3f074a3e92a0af3d7844e03e1ffd12be1ac5023f5d5c18bdfccd0bbfb0b7483edd32983ecb8aa93e1e681abf2b819b3e78128cbe
.data addr=0x340 hex=3ee6153f0eac473db79ff63e6c1fd73ec27720bf4aa1fc3e6d437dbec13a24bf6b89f43e464c243fe075aabe9aac903edc4d133effb388bcf6eb07bf45586abd
.data addr=0x380 hex=b6c92fbe351f493fb136c43dbd87423e303b94bdec3aa33e460510be59392abf476b91bdc7bd88be2bfc85be8b8bdc3e0510e3bef0b9d63e1192133faa6b61bf
.data addr=0x3c0 hex=ad263dbfd5b960bff8fc1b3dad0f0abf225d383f357f62bd1dad933ef93badbd791f03bd21eb043f9625e83e8d7673be0de9debe7b37943dcd90733ff5e1473e
.data addr=0x400 hex=364127eb1d0419263bdf3041c5102cb62c032ff195d0cfb9ac1b0a0574c560b5b0c95a07f00342f276c9d0cc28266cf055e60747d324edc68c1c7ce447baa533
.data addr=0x440 hex=f07ae6fb285e3d0230fd47fda02b4f02f08c9cfca85c9ffdd8d90bfce83c81020000000000000000000000000000000000000000000000000000000000000000
.data addr=0x480 hex=820c70ee48181c35f2da150f661eac1ae6d76a062f35de239e4cff3965eec9d1ddcf2ef2e7e50acc8d2997cbf0c52b3f4a4468191fe5b5d499361d31681f02e4
.data addr=0x4c0 hex=b73f96fc6afed4c6cc0dfac655f6fae3c20097093545a3dac030c54c0ce50b450916e61d72253cb40e4897f387dae13e56ecc64cda24e8d442f7b505b3c52c2b
.data addr=0x500 hex=41e63ad1baee761f1bd8c90c0ac1271dc21fa0c3242d5bc0eaca27430e3f1b2514e5a40d5cca53c2873d20ceceb5fa36cb21d527d308e7c48fd3bddb81495dd4
.data addr=0x540 hex=9f16f919a8d02de6b211b62029f42533050609064b0af5bd0c1e803b0a2bde29023cad205811a23c6abb543566d44d3b6c44be2fa9ed8f335c3b9546523af7f3
.data addr=0x580 hex=70f774fbe05cfd03b07314fe60e5670170093800b0f7abfb6014fb03a8a39502006cc50408ce6c0240e8d4fc60890104880a420098b746025cb626fc84909efe
.data addr=0x5c0 hex=007849fb406421fe2817090178313bfc90b28701d8a09302e82eab0090d4c9fc804947fc10e584fe50641b028015bc048098c20230a075ff68d6ae0148784afb
.data addr=0x600 hex=e15828fccc3b8c00ed83ffff0000000038076eff099d7dff8ed7ffff0000000082dce2febe9a49ff989fffff0000000068bc29fe6414b201ce87ffff00000000
.data addr=0x640 hex=c204bd66ed20d15f81132b3f8922aaf9a929f06c20fd950cc558f2f6fa42147fd47f2a2f39303bd0d6b71006ddd6c5e71c3cde2de58109bc05e8fbdafe2b3264
.data addr=0x680 hex=ad4eb38114141e4b1110bf25cba5d9d7f6014e5a1810d62af84aea81c91df541e07fe0cf131d1625d431dc0011a0dce9f90281f5d8e967de03654d49d8ef4699
.data addr=0x6c0 hex=f2267338175eab388da1eb38530c853840a48c384236ce3840cdba38a8ddb5380000000000000000000000000000000000000000000000000000000000000000
.data addr=0x700 hex=eb500508c733b5ddc3f6dd330e34287f161a1417a5d97fe42c8aad262026ff3273fbd40f0d0beff9fb1f3c04db7fda0922ecde97e5bff04a5e2e0cbbf9f2ce7f
.data addr=0x740 hex=73f2d23824f4a338585caa385ad3a838000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
.data addr=0x780 hex=13080538672181f18cb1edb731ec28c7e5081481ea0cecf518cbfb182f311a5955440c0fdf60dab9d1dad2240e4d8153dd5881d42fc91383665574911c104d1d
.data addr=0x7c0 hex=e6c406c5b6ec432d412d61abead87f9eccbb33f8bded3444f9c1feda577f37823a38d52a9af013e1fb018117df36ca3449b22081eaf2c8f005db0bbe0333f926
.data addr=0x800 hex=2ec6c81afe0339d00fc1daf4f6137fe153d614fdda8107a4672ae6e11aea4b153a8153b8d0d950ac19cdee51e360719d7fd85a2cc2fe86f3eda3b1062971c6ed
.data addr=0x840 hex=f896c5b8cb09123d7f5861e0a6690a260bca9bae7f9a02386ff2282a2acdb4114293d713cad8f5811143984f7d2f69145c1613fd7f251dc7e91bc1f0f08150a6
.data addr=0x880 hex=0386b050597f1e0a5011e832d348fb9cac382423fa21e00940f1f42a7fe2f70576c38131164024320d258df885bb0af013ec0dee017fb443ca2edbc9ec7a25e5
.data addr=0x8c0 hex=3eb91724cd09de2781c330130e1a7adc3d3bf36cbe2d2427dedc81e6f5dd391be404389fed3c38422efbf92a812b9400815a152943d32413c30c122fea22d83d
.data addr=0x900 hex=34e9110b255c536649d32cd481afadfdb8bed0e20305cd3de87f25dd200cc7eb5eea29a66581c5acebec42f991b048de6e150862d7c5cb92a58e81027e243ef1
.data addr=0x940 hex=e40919ee13abca2ad5eae0463d7fe7135ee4df2e81095fec05e71073c054e3fbc0ece04a439d391e497f1808dcbb0c8a17f60914fdb3e80fc8f7331e367f3bc8
.data addr=0x980 hex=3b755c382056d138f4059b3820d77538595c95383d306b38da9f9a38d2b5803872d5a438ce928a38bd218938b3d954386bcfaf3825ba5938f3b38e3852b89038
.data addr=0x9c0 hex=7191ae38b084c338c4629c381f04a038942589384948c238e06d06390d92c13824a0df3843aba83805d98a38893e50380d56a73851726e385ecdb6384709b838
.data addr=0xa00 hex=7fbf25b3bec5168f4c61c3eaf05768b7a05a4b21ec3c8afeb481b32056e23c586ff6ddbb0e173c31ed5481b9dc2735def81ce7dc35e3e97fc41244badcfce61c
.data addr=0xa40 hex=19413922c1f0b30bb539cb7fa44184e569837c15f51900a40c81a8eadc38334407e6441a2bca811159eb2204e80d22254e83e37ff5dc49ddc14ebcfde17902aa
.data addr=0xa80 hex=5f02460cf6cf0d74e8e7a58111980f40f15242fd45f1e481ebdde9e749d60a187fac11937094081ae00a6cdadb7404d7ea3ebc4f6cfb368137a3b4c1e9453bb5
.data addr=0xac0 hex=b2859a093720280141157f42d29d18f10f590e7fe551bbe0dbb2b8f309190fc0bdddea55d35ab9fdd4ce2a455c4181b32ff8c31af07fd1d5d2d8cd02fb190724
.data addr=0xb00 hex=edf621d33e52b4e113f75405b03e810461aa061dcfed2881f8f4c15c15f35ddc2d346965b2dee0e699821e067f482adb1e9bf1bb44527f47ef5b1e2b96921ea7
.data addr=0xb40 hex=e5ac7ff1da9821de01ae12f90e3d023aa0d49e979bb2cd30067fc5031f3c2de881edd32d20e221b61de3c26d2c44fb00ca817f34dde0e3cad9ff7e6b6f10f994
.data addr=0xb80 hex=7fdcec9bca1c1cde55c540fddb2c67ec945f08dc4091a7aae10d15435e8177d5b3ea2bbd26d87ff10415a0f4f200b3fb2a81c942e2e64b0d7619013bbf0c0d9e
.data addr=0xbc0 hex=62531ba1cdc541a3c6d9c4ede8e37f6d2ae2b8fc81be6aa74d1d8df4971666071d20d3810838fe377ccc50e086df1413adf22cde32ff2b72d208e5f50d81e914
.data addr=0xc00 hex=b2f38438ca379938a2338838aade8d38bb919e382d9eb538a46c7a38153dbc386cf9c638b9b6c4383d4e8c38ab6ca53823479e3896a0d2389a3f9b38f9adda38
.data addr=0xc40 hex=060fca3800e8bf38729be0389e6ea238e2f3cb386972903826caad38575e4e38b4c58b38e559a238c998db3891d98f3862bca438f48970386b74a638b17c7538
.data addr=0xc80 hex=11174056e42c29da81b3380452e31b3bdba93d472f441a15fcfb4be313f72eba041e416e0920fd253ad11739059c1120feefdad1ece9c4d7b69181e8f4e0edf7
.data addr=0xcc0 hex=fe651579de0b972be0ef12fe81e432bb5160d19d5f301225299f38ce514b5129eb023b26edffd3cc55182a572a09a28c0fe804e11aff0a3281a40ed352fc7433
.data addr=0xd00 hex=f0f0f25dc8f4a4c10e3304813e4111b6df1ea516247cf7112445229c2b2a07c19ce6f310bd1dba18ebb6e82241663ad4fbe6e8c00f06f3d1d9607ff82ab9d025
.data addr=0xd40 hex=fbead119a71952d3fc243ef220e2dac3812ed8e50b04c02f4bd8da9cef1812ce48f72b391bfd2604c366f5f7d5bcf3da7624e3dde8c481e19bec12a7e303d60d
.data addr=0xd80 hex=ba26d42af648231924efebf0e92ec0f58fecf4c524b981fcfdedd47ab5c401cece580cdff581b550e8b0dd494973249c22d7f03d205420b89b91572607a1ed32
.data addr=0xdc0 hex=f3addfb785ea3356eaf126e4d6fc2132b204d3e70b7f04d617ee56ef21c2e046cd9806032f124c56d0e87faef5495227634feaf920ac23c8fb64ff6bab0f2ad9
.data addr=0xe00 hex=2a02331a1c13b6d012fe05a37ff9c2dfcb2ee8a4c315175d660dd938e313a3bbfc35d1eb0cfb0f10a50a7f70d9b428e43d06e6cf25dee8e0e5f236ead42b1fc6
.data addr=0xe40 hex=1ffa460d164f9190ab03201c40061b21a2e0ec8113cfd01dc2dad376b1de3e1728e600130a7f6634012b4b0b2e387066c7d10ad601b6f60fcbfb1b2094dc2305
.data addr=0xe80 hex=9507a7388752bb38ed57923898b08e38aa1cb3382540b6385103aa38f6b6a038ad8b9638f9659738bb9c8f381fff6a38cda394383b33a3382f488d38ee50c138
.data addr=0xec0 hex=c65a16e3d2f78161a9133ae114c4c8ea1f24d64cb70ec704ddcb813ded2212b010d85dd5f3d3bc11140d8138c3fe51e534e38aae7fa2f51de6205ef8b8240bc1
.data addr=0xf00 hex=fd81cabbe92fe6044af21af55100f4111bac18f301aa7fd91d53f314ce06be10d641b6245e1d1e52cad9ae2d1e7f3a32092ea22a81778ee78b303a6e05efbb49
.data addr=0xf40 hex=c93902dbba9f17253224e4cddd94a27fe49de659d8f6fc7f6c18feca65bf819efe71f52a1ce008314e18cf52815209dae935e510c8cec7e746e30e2398007f2c
.data addr=0xf80 hex=1e0ec829ebf0d3e8428118e0f1302cc61deb4ff97f00fa35dd1fd6c71b24c93edaf53b815d9cc2782fdc40ef2dec138dff42c4b5a3fe07e7a1510a5d8efb81fd
.data addr=0xfc0 hex=45ebfe38f6b91b3923c4e638078d0639631c1c392aef0e39e073e33845d0d138e053b338583c7b38b225ba38576d03391f0dd738cfc50239418dd638d67dd338

.program prefill ddr_size=0x13c0
.input tokens ddr=0x1000 shape=(4,) dtype=i32
.state layers.0.conv ddr=0x1040 shape=(3, 40) dtype=i16 exp=-13
.state layers.0.ssm ddr=0x1140 shape=(4, 8, 4) dtype=i32 exp=-30
.output logits ddr=0x1340 shape=(1, 16) dtype=f32
.output next_token ddr=0x1380 shape=(1,) dtype=i32
.loc "embedding tokens"
ld buf=0, ddr=4096, rows=1, row_bytes=16, ddr_stride=16, buf_stride=16, sem=1  # 0
.loc "mamba_quant.qlinear layers.0.in_proj tile 2 weights"
ld buf=64, ddr=1920, rows=1, row_bytes=640, ddr_stride=640, buf_stride=640, sem=2  # 1
.loc "mamba_quant.qlinear layers.0.in_proj tile 0 weights"
ld buf=704, ddr=1600, rows=1, row_bytes=160, ddr_stride=160, buf_stride=160, sem=3  # 2
.loc "mamba_quant.qlinear layers.0.in_proj tile 1 weights"
ld buf=1280, ddr=1792, rows=1, row_bytes=80, ddr_stride=80, buf_stride=80, sem=4  # 3
.loc "layer 0 conv weights[0:32]"
ld buf=1600, ddr=1152, rows=1, row_bytes=256, ddr_stride=256, buf_stride=256, sem=5  # 4
.loc "layer 0 conv state[0:32]"
ld buf=1856, ddr=4160, rows=3, row_bytes=64, ddr_stride=80, buf_stride=64, sem=6  # 5
.loc "layer 0 conv bias[0:32]"
ld buf=2048, ddr=1408, rows=1, row_bytes=128, ddr_stride=128, buf_stride=128, sem=5  # 6
.loc "layer 0 conv weights[32:40]"
ld buf=2176, ddr=1024, rows=1, row_bytes=64, ddr_stride=64, buf_stride=64, sem=2 ; delay=57  # 7
.loc "embedding"
ldg buf=2240, ddr=0, idx=0, rows=4, row_bytes=64, ddr_stride=64, buf_stride=64, limit=16, sem=1 | ctl.wait sem=1, count=1 ; delay=10  # 8
.loc "layer 0 conv state[32:40]"
ld buf=2496, ddr=4224, rows=3, row_bytes=16, ddr_stride=80, buf_stride=16, sem=2 ; delay=2  # 9
.loc "layer 0 conv bias[32:40]"
ld buf=2560, ddr=1088, rows=1, row_bytes=32, ddr_stride=32, buf_stride=32, sem=2 ; delay=1  # 10
.loc "mamba_quant.qlinear layers.0.in_proj tile 3 weights"
ld buf=2624, ddr=2560, rows=1, row_bytes=640, ddr_stride=640, buf_stride=640, sem=7 ; delay=4  # 11
.loc "layer 0 ssm state heads 0+4"
ld buf=3264, ddr=4416, rows=1, row_bytes=512, ddr_stride=512, buf_stride=512, sem=8 ; delay=3  # 12
.loc "layer 0 ssm params"
ld buf=3776, ddr=1536, rows=1, row_bytes=64, ddr_stride=64, buf_stride=64, sem=8 ; delay=43  # 13
.loc "mamba_quant.vec rmsnorm"
vec dst=3840, a=2240, b=0, rows=4, cols=16, a_ld=16, b_ld=16, dst_ld=16, a_type=f32, a_exp=0, b_type=f32, b_exp=0, b_mode=none, op0=rmsnorm, op1=none, op2=none, op3=none, group=16, eps=1e-05, out_type=i16, out_scale=13676.661 | ctl.wait sem=1, count=1 ; delay=11  # 14
.loc "mamba_quant.qlinear layers.0.in_proj tile 0"
lin dst=3968, src=3840, wgt=704, scale=832, m=4, k=16, n=8, src_ld=16, dst_ld=8, src_type=i16, hlog2=4, qmul=64509, qshift=26, acc=0, out=f32 | ctl.wait sem=3, count=1  # 15
.loc "mamba_quant.qlinear layers.0.in_proj tile 1"
lin dst=4480, src=3840, wgt=1280, scale=1344, m=4, k=16, n=4, src_ld=16, dst_ld=4, src_type=i16, hlog2=4, qmul=64509, qshift=26, acc=0, out=f32 | ctl.wait sem=4, count=1 ; delay=8  # 16
.loc "mamba_quant.qlinear layers.0.in_proj tile 3"
lin dst=4736, src=3840, wgt=2624, scale=3136, m=4, k=16, n=32, src_ld=16, dst_ld=32, src_type=i16, hlog2=4, qmul=64509, qshift=26, acc=0, out=f32 | ctl.wait sem=7, count=1 ; delay=6  # 17
.loc "mamba_quant.qlinear layers.0.out_proj tile 0 weights; mamba_quant.vec convert (layers.0.in_proj tile 0)"
ld buf=704, ddr=3200, rows=1, row_bytes=576, ddr_stride=576, buf_stride=576, sem=1 | vec dst=0, a=3968, b=0, rows=4, cols=8, a_ld=8, b_ld=8, dst_ld=8, a_type=f32, a_exp=0, b_type=f32, b_exp=0, b_mode=none, op0=none, op1=none, op2=none, op3=none, group=1, eps=0.0, out_type=i16, out_scale=8192.0  # 18
.loc "mamba_quant.qlinear embeddings tile 0 weights; mamba_quant.vec convert (layers.0.in_proj tile 1)"
ld buf=1280, ddr=3776, rows=1, row_bytes=320, ddr_stride=320, buf_stride=320, sem=3 | vec dst=5248, a=4480, b=0, rows=4, cols=4, a_ld=4, b_ld=4, dst_ld=4, a_type=f32, a_exp=0, b_type=f32, b_exp=0, b_mode=none, op0=none, op1=none, op2=none, op3=none, group=1, eps=0.0, out_type=i16, out_scale=8192.0 ; delay=9  # 19
.loc "mamba_quant.qlinear layers.0.in_proj tile 2; mamba_quant.qconv1d layer 0[32:40]"
lin dst=3968, src=3840, wgt=64, scale=576, m=4, k=16, n=32, src_ld=16, dst_ld=32, src_type=i16, hlog2=4, qmul=64509, qshift=26, acc=0, out=f32 | conv dst=2624, src=0, state=2496, wgt=2176, bias=2560, t=4, c=8, kw=4, src_ld=8, dst_ld=8, shift=15, out_type=i16, upd=1 | ctl.wait sem=2, count=4 ; delay=8  # 20
.loc "layer 0 conv state[32:40]"
st ddr=4224, buf=2496, rows=3, row_bytes=16, ddr_stride=80, buf_stride=16, sem=2 | ctl.wait sem=6, count=1 ; delay=8  # 21
.loc "mamba_quant.vec convert (layers.0.in_proj tile 2)"
vec dst=0, a=3968, b=0, rows=4, cols=32, a_ld=32, b_ld=32, dst_ld=32, a_type=f32, a_exp=0, b_type=f32, b_exp=0, b_mode=none, op0=none, op1=none, op2=none, op3=none, group=1, eps=0.0, out_type=i16, out_scale=8192.0 ; delay=11  # 22
.loc "mamba_quant.qconv1d layer 0[0:32]"
conv dst=256, src=0, state=1856, wgt=1600, bias=2048, t=4, c=32, kw=4, src_ld=32, dst_ld=40, shift=15, out_type=i16, upd=1 | ctl.wait sem=5, count=2 ; delay=11  # 23
.loc "mamba_quant.vec silu (heads 0+4)"
vec dst=256, a=256, b=0, rows=4, cols=32, a_ld=40, b_ld=32, dst_ld=40, a_type=i16, a_exp=-13, b_type=f32, b_exp=0, b_mode=none, op0=silu, op1=none, op2=none, op3=none, group=1, eps=0.0, out_type=i16, out_scale=16384.0 ; delay=11  # 24
.loc "mamba_quant.vec silu (heads 0+4)"
vec dst=320, a=2624, b=0, rows=4, cols=4, a_ld=8, b_ld=4, dst_ld=40, a_type=i16, a_exp=-13, b_type=f32, b_exp=0, b_mode=none, op0=silu, op1=none, op2=none, op3=none, group=1, eps=0.0, out_type=i16, out_scale=32768.0 ; delay=10  # 25
.loc "mamba_quant.vec silu (heads 0+4)"
vec dst=328, a=2632, b=0, rows=4, cols=4, a_ld=8, b_ld=4, dst_ld=40, a_type=i16, a_exp=-13, b_type=f32, b_exp=0, b_mode=none, op0=silu, op1=none, op2=none, op3=none, group=1, eps=0.0, out_type=i16, out_scale=16384.0 ; delay=8  # 26
.loc "layer 0 conv state[0:32]"
st ddr=4160, buf=1856, rows=3, row_bytes=64, ddr_stride=80, buf_stride=64, sem=0 | ctl.wait sem=2, count=1 ; delay=1  # 27
.loc "mamba_quant.qssm_scan layer 0 heads 0+4"
ssm y=2496, xbc=256, dt=5248, params=3776, state=3264, t=4, h=4, p=8, n=4, hpg=4, xbc_ld=40, b_off=32, c_off=36, dt_ld=4, y_ld=32, dt_frac=13, a_frac=24, dbx_shift=12, y_shift=16, d_shift=10 | ctl.wait sem=8, count=2 ; delay=15  # 28
.loc "layer 0 ssm state heads 0+4; mamba_quant.vec gate+rmsnorm"
st ddr=4416, buf=3264, rows=1, row_bytes=512, ddr_stride=512, buf_stride=512, sem=0 | vec dst=0, a=2496, b=4736, rows=4, cols=32, a_ld=32, b_ld=32, dst_ld=32, a_type=i32, a_exp=-28, b_type=f32, b_exp=0, b_mode=full, op0=gate, op1=rmsnorm, op2=none, op3=none, group=32, eps=1e-05, out_type=i16, out_scale=5938.6836 ; delay=13  # 29
.loc "mamba_quant.qlinear layers.0.out_proj tile 0"
lin dst=4480, src=0, wgt=704, scale=1216, m=4, k=32, n=16, src_ld=32, dst_ld=16, src_type=i16, hlog2=5, qmul=44265, qshift=25, acc=0, out=f32 | ctl.wait sem=1, count=1 ; delay=17  # 30
.loc "mamba_quant.vec add (layers.0.out_proj tile 0)"
vec dst=0, a=2240, b=4480, rows=4, cols=16, a_ld=16, b_ld=16, dst_ld=16, a_type=f32, a_exp=0, b_type=f32, b_exp=0, b_mode=full, op0=add, op1=none, op2=none, op3=none, group=1, eps=0.0, out_type=f32, out_scale=1.0 ; delay=10  # 31
.loc "mamba_quant.vec rmsnorm"
vec dst=256, a=192, b=0, rows=1, cols=16, a_ld=16, b_ld=16, dst_ld=16, a_type=f32, a_exp=0, b_type=f32, b_exp=0, b_mode=none, op0=rmsnorm, op1=none, op2=none, op3=none, group=16, eps=1e-05, out_type=i16, out_scale=13538.826 ; delay=11  # 32
.loc "mamba_quant.qlinear embeddings tile 0"
lin dst=0, src=256, wgt=1280, scale=1536, m=1, k=16, n=16, src_ld=16, dst_ld=16, src_type=i16, hlog2=4, qmul=46092, qshift=25, acc=0, out=f32 | ctl.wait sem=3, count=1 ; delay=16  # 33
.loc "logits; next token"
st ddr=4928, buf=0, rows=1, row_bytes=64, ddr_stride=64, buf_stride=64, sem=0 | vec.argmax dst=64, a=0, rows=1, cols=16 ; delay=10  # 34
.loc "next token"
st ddr=4992, buf=64, rows=1, row_bytes=4, ddr_stride=4, buf_stride=4, sem=0 | ctl.halt  # 35

.program decode ddr_size=0x13c0
.input tokens ddr=0x1000 shape=(1,) dtype=i32
.state layers.0.conv ddr=0x1040 shape=(3, 40) dtype=i16 exp=-13
.state layers.0.ssm ddr=0x1140 shape=(4, 8, 4) dtype=i32 exp=-30
.output logits ddr=0x1340 shape=(1, 16) dtype=f32
.output next_token ddr=0x1380 shape=(1,) dtype=i32
.loc "embedding tokens"
ld buf=0, ddr=4096, rows=1, row_bytes=4, ddr_stride=4, buf_stride=4, sem=1  # 0
.loc "mamba_quant.qlinear layers.0.in_proj tile 2 weights"
ld buf=64, ddr=1920, rows=1, row_bytes=640, ddr_stride=640, buf_stride=640, sem=2  # 1
.loc "mamba_quant.qlinear layers.0.in_proj tile 0 weights"
ld buf=704, ddr=1600, rows=1, row_bytes=160, ddr_stride=160, buf_stride=160, sem=3  # 2
.loc "mamba_quant.qlinear layers.0.in_proj tile 1 weights"
ld buf=1280, ddr=1792, rows=1, row_bytes=80, ddr_stride=80, buf_stride=80, sem=4  # 3
.loc "layer 0 conv weights[0:32]"
ld buf=1600, ddr=1152, rows=1, row_bytes=256, ddr_stride=256, buf_stride=256, sem=5  # 4
.loc "layer 0 conv state[0:32]"
ld buf=1856, ddr=4160, rows=3, row_bytes=64, ddr_stride=80, buf_stride=64, sem=6  # 5
.loc "layer 0 conv bias[0:32]"
ld buf=2048, ddr=1408, rows=1, row_bytes=128, ddr_stride=128, buf_stride=128, sem=5  # 6
.loc "layer 0 conv weights[32:40]"
ld buf=2176, ddr=1024, rows=1, row_bytes=64, ddr_stride=64, buf_stride=64, sem=2 ; delay=57  # 7
.loc "embedding"
ldg buf=2240, ddr=0, idx=0, rows=1, row_bytes=64, ddr_stride=64, buf_stride=64, limit=16, sem=1 | ctl.wait sem=1, count=1 ; delay=10  # 8
.loc "layer 0 conv state[32:40]"
ld buf=2304, ddr=4224, rows=3, row_bytes=16, ddr_stride=80, buf_stride=16, sem=2 ; delay=2  # 9
.loc "layer 0 conv bias[32:40]"
ld buf=2368, ddr=1088, rows=1, row_bytes=32, ddr_stride=32, buf_stride=32, sem=2 ; delay=1  # 10
.loc "mamba_quant.qlinear layers.0.in_proj tile 3 weights"
ld buf=2432, ddr=2560, rows=1, row_bytes=640, ddr_stride=640, buf_stride=640, sem=7 ; delay=4  # 11
.loc "layer 0 ssm state heads 0+4"
ld buf=3072, ddr=4416, rows=1, row_bytes=512, ddr_stride=512, buf_stride=512, sem=8 ; delay=3  # 12
.loc "layer 0 ssm params"
ld buf=3584, ddr=1536, rows=1, row_bytes=64, ddr_stride=64, buf_stride=64, sem=8 ; delay=40  # 13
.loc "mamba_quant.vec rmsnorm"
vec dst=0, a=2240, b=0, rows=1, cols=16, a_ld=16, b_ld=16, dst_ld=16, a_type=f32, a_exp=0, b_type=f32, b_exp=0, b_mode=none, op0=rmsnorm, op1=none, op2=none, op3=none, group=16, eps=1e-05, out_type=i16, out_scale=13676.661 | ctl.wait sem=1, count=1 ; delay=11  # 14
.loc "mamba_quant.qlinear layers.0.in_proj tile 0"
lin dst=3648, src=0, wgt=704, scale=832, m=1, k=16, n=8, src_ld=16, dst_ld=8, src_type=i16, hlog2=4, qmul=64509, qshift=26, acc=0, out=f32 | ctl.wait sem=3, count=1  # 15
.loc "mamba_quant.qlinear layers.0.in_proj tile 1"
lin dst=3776, src=0, wgt=1280, scale=1344, m=1, k=16, n=4, src_ld=16, dst_ld=4, src_type=i16, hlog2=4, qmul=64509, qshift=26, acc=0, out=f32 | ctl.wait sem=4, count=1 ; delay=11  # 16
.loc "mamba_quant.qlinear layers.0.in_proj tile 3"
lin dst=3840, src=0, wgt=2432, scale=2944, m=1, k=16, n=32, src_ld=16, dst_ld=32, src_type=i16, hlog2=4, qmul=64509, qshift=26, acc=0, out=f32 | ctl.wait sem=7, count=1 ; delay=3  # 17
.loc "mamba_quant.qlinear layers.0.out_proj tile 0 weights; mamba_quant.vec convert (layers.0.in_proj tile 0)"
ld buf=704, ddr=3200, rows=1, row_bytes=576, ddr_stride=576, buf_stride=576, sem=1 | vec dst=3968, a=3648, b=0, rows=1, cols=8, a_ld=8, b_ld=8, dst_ld=8, a_type=f32, a_exp=0, b_type=f32, b_exp=0, b_mode=none, op0=none, op1=none, op2=none, op3=none, group=1, eps=0.0, out_type=i16, out_scale=8192.0  # 18
.loc "mamba_quant.qlinear embeddings tile 0 weights; mamba_quant.vec convert (layers.0.in_proj tile 1)"
ld buf=1280, ddr=3776, rows=1, row_bytes=320, ddr_stride=320, buf_stride=320, sem=3 | vec dst=4032, a=3776, b=0, rows=1, cols=4, a_ld=4, b_ld=4, dst_ld=4, a_type=f32, a_exp=0, b_type=f32, b_exp=0, b_mode=none, op0=none, op1=none, op2=none, op3=none, group=1, eps=0.0, out_type=i16, out_scale=8192.0 ; delay=9  # 19
.loc "mamba_quant.qlinear layers.0.in_proj tile 2; mamba_quant.qconv1d layer 0[32:40]"
lin dst=3648, src=0, wgt=64, scale=576, m=1, k=16, n=32, src_ld=16, dst_ld=32, src_type=i16, hlog2=4, qmul=64509, qshift=26, acc=0, out=f32 | conv dst=4096, src=3968, state=2304, wgt=2176, bias=2368, t=1, c=8, kw=4, src_ld=8, dst_ld=8, shift=15, out_type=i16, upd=1 | ctl.wait sem=2, count=4 ; delay=8  # 20
.loc "layer 0 conv state[32:40]"
st ddr=4224, buf=2304, rows=3, row_bytes=16, ddr_stride=80, buf_stride=16, sem=2 | ctl.wait sem=6, count=1 ; delay=7  # 21
.loc "mamba_quant.vec convert (layers.0.in_proj tile 2)"
vec dst=0, a=3648, b=0, rows=1, cols=32, a_ld=32, b_ld=32, dst_ld=32, a_type=f32, a_exp=0, b_type=f32, b_exp=0, b_mode=none, op0=none, op1=none, op2=none, op3=none, group=1, eps=0.0, out_type=i16, out_scale=8192.0  # 22
.loc "mamba_quant.vec silu (heads 0+4)"
vec dst=128, a=4096, b=0, rows=1, cols=4, a_ld=8, b_ld=4, dst_ld=40, a_type=i16, a_exp=-13, b_type=f32, b_exp=0, b_mode=none, op0=silu, op1=none, op2=none, op3=none, group=1, eps=0.0, out_type=i16, out_scale=32768.0  # 23
.loc "mamba_quant.vec silu (heads 0+4)"
vec dst=136, a=4104, b=0, rows=1, cols=4, a_ld=8, b_ld=4, dst_ld=40, a_type=i16, a_exp=-13, b_type=f32, b_exp=0, b_mode=none, op0=silu, op1=none, op2=none, op3=none, group=1, eps=0.0, out_type=i16, out_scale=16384.0 ; delay=8  # 24
.loc "mamba_quant.qconv1d layer 0[0:32]"
conv dst=64, src=0, state=1856, wgt=1600, bias=2048, t=1, c=32, kw=4, src_ld=32, dst_ld=40, shift=15, out_type=i16, upd=1 | ctl.wait sem=5, count=2 ; delay=8  # 25
.loc "mamba_quant.vec silu (heads 0+4)"
vec dst=64, a=64, b=0, rows=1, cols=32, a_ld=40, b_ld=32, dst_ld=40, a_type=i16, a_exp=-13, b_type=f32, b_exp=0, b_mode=none, op0=silu, op1=none, op2=none, op3=none, group=1, eps=0.0, out_type=i16, out_scale=16384.0 ; delay=10  # 26
.loc "mamba_quant.qssm_scan layer 0 heads 0+4"
ssm y=192, xbc=64, dt=4032, params=3584, state=3072, t=1, h=4, p=8, n=4, hpg=4, xbc_ld=40, b_off=32, c_off=36, dt_ld=4, y_ld=32, dt_frac=13, a_frac=24, dbx_shift=12, y_shift=16, d_shift=10 | ctl.wait sem=8, count=2 ; delay=12  # 27
.loc "layer 0 ssm state heads 0+4; mamba_quant.vec gate+rmsnorm"
st ddr=4416, buf=3072, rows=1, row_bytes=512, ddr_stride=512, buf_stride=512, sem=0 | vec dst=0, a=192, b=3840, rows=1, cols=32, a_ld=32, b_ld=32, dst_ld=32, a_type=i32, a_exp=-28, b_type=f32, b_exp=0, b_mode=full, op0=gate, op1=rmsnorm, op2=none, op3=none, group=32, eps=1e-05, out_type=i16, out_scale=5938.6836 ; delay=11  # 28
.loc "mamba_quant.qlinear layers.0.out_proj tile 0"
lin dst=64, src=0, wgt=704, scale=1216, m=1, k=32, n=16, src_ld=32, dst_ld=16, src_type=i16, hlog2=5, qmul=44265, qshift=25, acc=0, out=f32 | ctl.wait sem=1, count=1  # 29
.loc "layer 0 conv state[0:32]"
st ddr=4160, buf=1856, rows=3, row_bytes=64, ddr_stride=80, buf_stride=64, sem=0 | ctl.wait sem=2, count=1 ; delay=15  # 30
.loc "mamba_quant.vec add+rmsnorm"
vec dst=0, a=2240, b=64, rows=1, cols=16, a_ld=16, b_ld=16, dst_ld=16, a_type=f32, a_exp=0, b_type=f32, b_exp=0, b_mode=full, op0=add, op1=rmsnorm, op2=none, op3=none, group=16, eps=1e-05, out_type=i16, out_scale=13538.826 ; delay=11  # 31
.loc "mamba_quant.qlinear embeddings tile 0"
lin dst=64, src=0, wgt=1280, scale=1536, m=1, k=16, n=16, src_ld=16, dst_ld=16, src_type=i16, hlog2=4, qmul=46092, qshift=25, acc=0, out=f32 | ctl.wait sem=3, count=1 ; delay=16  # 32
.loc "logits; next token"
st ddr=4928, buf=64, rows=1, row_bytes=64, ddr_stride=64, buf_stride=64, sem=0 | vec.argmax dst=0, a=64, rows=1, cols=16 ; delay=10  # 33
.loc "next token"
st ddr=4992, buf=0, rows=1, row_bytes=4, ddr_stride=4, buf_stride=4, sem=0 | ctl.halt  # 34
