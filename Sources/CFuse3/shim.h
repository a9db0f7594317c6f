// FUSE_USE_VERSION 314 makes fuse_session_loop_mt a real function taking the opaque loop config.
#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
