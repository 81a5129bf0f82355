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
      "target_name": "scandir",
      "sources": ["scandir.c"],
      "cflags": ["-O2", "-Wall"]
    }
  ]
}
