/*
 * zstd's decompressor for codec.c, from the sources zstd-napi ships, compiled here as one unit:
 * listed one by one in binding.gyp, their objects would land where the zdelta target puts its own
 * (built with other flags: without the assembly Huffman loop), and one target would link the other's.
 */
#include "common/debug.c"
#include "common/entropy_common.c"
#include "common/error_private.c"
#include "common/fse_decompress.c"
#include "common/xxhash.c"
#include "common/zstd_common.c"
#include "decompress/huf_decompress.c"
#include "decompress/zstd_ddict.c"
#include "decompress/zstd_decompress.c"
#include "decompress/zstd_decompress_block.c"
