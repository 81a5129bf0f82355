{
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
      "target_name": "files",
      "sources": ["files.c"],
      "cflags": ["-O2", "-Wall"]
    }
  ]
}
