{
  "targets": [
    {
      "target_name": "timens",
      "sources": ["timens.c"],
      "cflags": ["-O2", "-Wall"]
    }
  ]
}
