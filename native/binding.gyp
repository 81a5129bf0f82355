{
  "variables": {
    # zstd's sources as zstd-napi ships them (its npm package carries deps/), relative to this directory
    # (gyp wants relative source paths): zdelta compiles its own copy
    "zstd_lib": "<!(node -p \"require('path').relative('.', require('path').join(require('path').dirname(require.resolve('zstd-napi/package.json')), 'deps', 'zstd', 'lib'))\")"
  },
  "targets": [
    {
      "target_name": "timens",
      "sources": ["timens.c"],
      "cflags": ["-O2", "-Wall"]
    },
    {
      "target_name": "bytes",
      "sources": ["bytes.c"],
      "cflags": ["-O3", "-Wall"]
    },
    {
      "target_name": "zdelta",
      "sources": [
        "zdelta.c",
        "<(zstd_lib)/common/debug.c",
        "<(zstd_lib)/common/entropy_common.c",
        "<(zstd_lib)/common/error_private.c",
        "<(zstd_lib)/common/fse_decompress.c",
        "<(zstd_lib)/common/xxhash.c",
        "<(zstd_lib)/common/zstd_common.c",
        "<(zstd_lib)/compress/fse_compress.c",
        "<(zstd_lib)/compress/hist.c",
        "<(zstd_lib)/compress/huf_compress.c",
        "<(zstd_lib)/compress/zstd_compress.c",
        "<(zstd_lib)/compress/zstd_compress_literals.c",
        "<(zstd_lib)/compress/zstd_compress_sequences.c",
        "<(zstd_lib)/compress/zstd_compress_superblock.c",
        "<(zstd_lib)/compress/zstd_double_fast.c",
        "<(zstd_lib)/compress/zstd_fast.c",
        "<(zstd_lib)/compress/zstd_lazy.c",
        "<(zstd_lib)/compress/zstd_ldm.c",
        "<(zstd_lib)/compress/zstd_opt.c",
        "<(zstd_lib)/compress/zstd_preSplit.c",
        "<(zstd_lib)/decompress/huf_decompress.c",
        "<(zstd_lib)/decompress/zstd_ddict.c",
        "<(zstd_lib)/decompress/zstd_decompress.c",
        "<(zstd_lib)/decompress/zstd_decompress_block.c"
      ],
      "include_dirs": ["<(zstd_lib)"],
      "defines": ["ZSTD_NO_TRACE", "ZSTD_DISABLE_ASM", "XXH_NAMESPACE=LBZD_"],
      "cflags": ["-O3", "-fvisibility=hidden"]
    },
    {
      "target_name": "codec",
      "sources": ["codec.c", "codec-zstd.c"],
      "include_dirs": ["<(zstd_lib)"],
      "defines": ["ZSTD_NO_TRACE", "XXH_NAMESPACE=LBCD_"],
      "cflags": ["-O3", "-Wall", "-fvisibility=hidden"],
      "conditions": [
        ["target_arch==\"x64\"", { "sources": ["<(zstd_lib)/decompress/huf_decompress_amd64.S"] }, { "defines": ["ZSTD_DISABLE_ASM"] }]
      ]
    },
    {
      "target_name": "scandir",
      "sources": ["scandir.c"],
      "cflags": ["-O2", "-Wall"]
    },
    {
      "target_name": "kdf",
      "sources": ["kdf.c"],
      "cflags": ["-O3", "-Wall"]
    },
    {
      "target_name": "hash",
      "sources": ["hash.c"],
      "cflags": ["-O2", "-Wall"]
    },
    {
      "target_name": "files",
      "sources": ["files.c"],
      "cflags": ["-O2", "-Wall"]
    },
    {
      "target_name": "indexscan",
      "sources": ["index-scan.c"],
      "cflags": ["-O2", "-Wall"]
    },
    {
      "target_name": "sched",
      "sources": ["sched.c"],
      "cflags": ["-O2", "-Wall"]
    },
    {
      "target_name": "mem",
      "sources": ["mem.c"],
      "cflags": ["-O2", "-Wall"]
    }
  ]
}
