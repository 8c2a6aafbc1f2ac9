/* The EROFS on-disk structures that nbd-share writes, in one place (after
 * Linux fs/erofs/erofs_fs.h, the subset that Linux 6.1 reads).
 *
 * The structs describe the layout with fixed-width native fields; their sizes
 * are checked at compile time. Nothing is ever cast to or from raw bytes: the
 * erofs_put_* functions write every field little-endian at its offsetof()
 * position, and erofs_get_super() decodes a superblock the same way, so the
 * code is right on any host byte order. */
#ifndef NBD_SHARE_EROFS_FORMAT_H
#define NBD_SHARE_EROFS_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define EROFS_SUPER_MAGIC 0xE0F5E1E2u
#define EROFS_SUPER_OFFSET 1024 /* room for boot sectors before the superblock */

/* feature_incompat bit: some inodes are chunk-based */
#define EROFS_FEATURE_INCOMPAT_CHUNKED_FILE 0x00000004u

/* i_format: bit 0 is the inode version, bits 1-3 the data layout */
#define EROFS_INODE_LAYOUT_EXTENDED 1
#define EROFS_I_DATALAYOUT_BIT 1
enum {
  EROFS_INODE_FLAT_PLAIN = 0,  /* data in contiguous blocks at raw_blkaddr */
  EROFS_INODE_FLAT_INLINE = 2, /* tail of the data right after the inode */
  EROFS_INODE_CHUNK_BASED = 4, /* chunk index array right after the inode */
};

/* i_u.c.format of chunk-based inodes: chunk size is block size << (format & 0x1f) */
#define EROFS_CHUNK_FORMAT_BLKBITS_MASK 0x001F
#define EROFS_CHUNK_FORMAT_INDEXES 0x0020 /* 8-byte chunk indexes, not 4-byte block map */

#define EROFS_NULL_ADDR 0xFFFFFFFFu /* a chunk that is a hole */
#define EROFS_NAME_LEN 255

/* file types in directory entries (the generic FT_* values) */
enum {
  EROFS_FT_UNKNOWN = 0,
  EROFS_FT_REG_FILE = 1,
  EROFS_FT_DIR = 2,
  EROFS_FT_CHRDEV = 3,
  EROFS_FT_BLKDEV = 4,
  EROFS_FT_FIFO = 5,
  EROFS_FT_SOCK = 6,
  EROFS_FT_SYMLINK = 7,
};

/* Superblock, at byte EROFS_SUPER_OFFSET of block 0. */
struct erofs_super_block {
  uint32_t magic;
  uint32_t checksum;          /* crc32c, only with the SB_CHKSUM compat feature */
  uint32_t feature_compat;
  uint8_t blkszbits;          /* Linux 6.1 wants PAGE_SHIFT */
  uint8_t sb_extslots;
  uint16_t root_nid;          /* 16 bits: the root inode lives early in the metadata */
  uint64_t inos;
  uint64_t build_time;        /* base of compact inodes' times (unused: all inodes are extended) */
  uint32_t build_time_nsec;
  uint32_t blocks;            /* total blocks, for statfs */
  uint32_t meta_blkaddr;      /* nid 0 is at byte meta_blkaddr << blkszbits */
  uint32_t xattr_blkaddr;
  uint8_t uuid[16];
  uint8_t volume_name[16];
  uint32_t feature_incompat;
  uint16_t available_compr_algs;
  uint16_t extra_devices;
  uint16_t devt_slotoff;
  uint8_t reserved2[38];
};
_Static_assert(sizeof(struct erofs_super_block) == 128, "erofs superblock is 128 bytes");

/* The 64-byte inode: 64-bit size and mtime, 32-bit uid, gid and nlink. */
struct erofs_inode_extended {
  uint16_t i_format;
  uint16_t i_xattr_icount;
  uint16_t i_mode;
  uint16_t i_reserved;
  uint64_t i_size;
  uint32_t i_u;               /* raw_blkaddr, or chunk format in the low 16 bits */
  uint32_t i_ino;             /* for 32-bit stat only */
  uint32_t i_uid;
  uint32_t i_gid;
  uint64_t i_mtime;
  uint32_t i_mtime_nsec;
  uint32_t i_nlink;
  uint8_t i_reserved2[16];
};
_Static_assert(sizeof(struct erofs_inode_extended) == 64, "erofs extended inode is 64 bytes");
#define EROFS_INODE_SLOT 32 /* nid = byte offset in the metadata area / 32 */

struct erofs_inode_chunk_index {
  uint16_t advise;
  uint16_t device_id;
  uint32_t blkaddr;
};
_Static_assert(sizeof(struct erofs_inode_chunk_index) == 8, "erofs chunk index is 8 bytes");

/* Directory blocks start with an array of these; names follow, unterminated,
 * sorted byte-wise across the whole directory (lookups binary-search). */
struct erofs_dirent {
  uint64_t nid;
  uint16_t nameoff;
  uint8_t file_type;
  uint8_t reserved;
} __attribute__((packed));
_Static_assert(sizeof(struct erofs_dirent) == 12, "erofs dirent is 12 bytes");

/* ---- little-endian field access ---- */

static inline void erofs_le16(uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

static inline void erofs_le32(uint8_t *p, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static inline void erofs_le64(uint8_t *p, uint64_t v)
{
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t erofs_get16(const uint8_t *p)
{
  return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t erofs_get32(const uint8_t *p)
{
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t erofs_get64(const uint8_t *p)
{
  return (uint64_t)erofs_get32(p) | (uint64_t)erofs_get32(p + 4) << 32;
}

#define EROFS_PUT(buf, type, field, width, value) \
  erofs_le##width((buf) + offsetof(struct type, field), (value))
#define EROFS_GET(buf, type, field, width) \
  erofs_get##width((buf) + offsetof(struct type, field))

/* ---- encoders: OUT holds sizeof(struct ...) bytes ---- */

static inline void erofs_put_super(uint8_t *out, const struct erofs_super_block *s)
{
  memset(out, 0, sizeof *s);
  EROFS_PUT(out, erofs_super_block, magic, 32, s->magic);
  EROFS_PUT(out, erofs_super_block, checksum, 32, s->checksum);
  EROFS_PUT(out, erofs_super_block, feature_compat, 32, s->feature_compat);
  out[offsetof(struct erofs_super_block, blkszbits)] = s->blkszbits;
  out[offsetof(struct erofs_super_block, sb_extslots)] = s->sb_extslots;
  EROFS_PUT(out, erofs_super_block, root_nid, 16, s->root_nid);
  EROFS_PUT(out, erofs_super_block, inos, 64, s->inos);
  EROFS_PUT(out, erofs_super_block, build_time, 64, s->build_time);
  EROFS_PUT(out, erofs_super_block, build_time_nsec, 32, s->build_time_nsec);
  EROFS_PUT(out, erofs_super_block, blocks, 32, s->blocks);
  EROFS_PUT(out, erofs_super_block, meta_blkaddr, 32, s->meta_blkaddr);
  EROFS_PUT(out, erofs_super_block, xattr_blkaddr, 32, s->xattr_blkaddr);
  memcpy(out + offsetof(struct erofs_super_block, uuid), s->uuid, sizeof s->uuid);
  memcpy(out + offsetof(struct erofs_super_block, volume_name), s->volume_name, sizeof s->volume_name);
  EROFS_PUT(out, erofs_super_block, feature_incompat, 32, s->feature_incompat);
  EROFS_PUT(out, erofs_super_block, available_compr_algs, 16, s->available_compr_algs);
  EROFS_PUT(out, erofs_super_block, extra_devices, 16, s->extra_devices);
  EROFS_PUT(out, erofs_super_block, devt_slotoff, 16, s->devt_slotoff);
}

/* The fields a reader of our own images needs (tests, tools). */
static inline void erofs_get_super(const uint8_t *in, struct erofs_super_block *s)
{
  memset(s, 0, sizeof *s);
  s->magic = EROFS_GET(in, erofs_super_block, magic, 32);
  s->feature_compat = EROFS_GET(in, erofs_super_block, feature_compat, 32);
  s->blkszbits = in[offsetof(struct erofs_super_block, blkszbits)];
  s->root_nid = EROFS_GET(in, erofs_super_block, root_nid, 16);
  s->inos = EROFS_GET(in, erofs_super_block, inos, 64);
  s->blocks = EROFS_GET(in, erofs_super_block, blocks, 32);
  s->meta_blkaddr = EROFS_GET(in, erofs_super_block, meta_blkaddr, 32);
  s->feature_incompat = EROFS_GET(in, erofs_super_block, feature_incompat, 32);
}

static inline void erofs_put_inode(uint8_t *out, const struct erofs_inode_extended *i)
{
  memset(out, 0, sizeof *i);
  EROFS_PUT(out, erofs_inode_extended, i_format, 16, i->i_format);
  EROFS_PUT(out, erofs_inode_extended, i_xattr_icount, 16, i->i_xattr_icount);
  EROFS_PUT(out, erofs_inode_extended, i_mode, 16, i->i_mode);
  EROFS_PUT(out, erofs_inode_extended, i_size, 64, i->i_size);
  EROFS_PUT(out, erofs_inode_extended, i_u, 32, i->i_u);
  EROFS_PUT(out, erofs_inode_extended, i_ino, 32, i->i_ino);
  EROFS_PUT(out, erofs_inode_extended, i_uid, 32, i->i_uid);
  EROFS_PUT(out, erofs_inode_extended, i_gid, 32, i->i_gid);
  EROFS_PUT(out, erofs_inode_extended, i_mtime, 64, i->i_mtime);
  EROFS_PUT(out, erofs_inode_extended, i_mtime_nsec, 32, i->i_mtime_nsec);
  EROFS_PUT(out, erofs_inode_extended, i_nlink, 32, i->i_nlink);
}

static inline void erofs_get_inode(const uint8_t *in, struct erofs_inode_extended *i)
{
  memset(i, 0, sizeof *i);
  i->i_format = EROFS_GET(in, erofs_inode_extended, i_format, 16);
  i->i_mode = EROFS_GET(in, erofs_inode_extended, i_mode, 16);
  i->i_size = EROFS_GET(in, erofs_inode_extended, i_size, 64);
  i->i_u = EROFS_GET(in, erofs_inode_extended, i_u, 32);
  i->i_ino = EROFS_GET(in, erofs_inode_extended, i_ino, 32);
  i->i_uid = EROFS_GET(in, erofs_inode_extended, i_uid, 32);
  i->i_gid = EROFS_GET(in, erofs_inode_extended, i_gid, 32);
  i->i_mtime = EROFS_GET(in, erofs_inode_extended, i_mtime, 64);
  i->i_mtime_nsec = EROFS_GET(in, erofs_inode_extended, i_mtime_nsec, 32);
  i->i_nlink = EROFS_GET(in, erofs_inode_extended, i_nlink, 32);
}

static inline void erofs_put_chunk_index(uint8_t *out, const struct erofs_inode_chunk_index *c)
{
  EROFS_PUT(out, erofs_inode_chunk_index, advise, 16, c->advise);
  EROFS_PUT(out, erofs_inode_chunk_index, device_id, 16, c->device_id);
  EROFS_PUT(out, erofs_inode_chunk_index, blkaddr, 32, c->blkaddr);
}

static inline void erofs_put_dirent(uint8_t *out, const struct erofs_dirent *d)
{
  EROFS_PUT(out, erofs_dirent, nid, 64, d->nid);
  EROFS_PUT(out, erofs_dirent, nameoff, 16, d->nameoff);
  out[offsetof(struct erofs_dirent, file_type)] = d->file_type;
  out[offsetof(struct erofs_dirent, reserved)] = 0;
}

static inline void erofs_get_dirent(const uint8_t *in, struct erofs_dirent *d)
{
  d->nid = EROFS_GET(in, erofs_dirent, nid, 64);
  d->nameoff = EROFS_GET(in, erofs_dirent, nameoff, 16);
  d->file_type = in[offsetof(struct erofs_dirent, file_type)];
  d->reserved = 0;
}

#endif
