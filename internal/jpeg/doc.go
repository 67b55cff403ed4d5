// Package jpeg is the training-data loader's JPEG decoder: pure Go, fast
// enough to turn a 12-MP phone photo into a 224x224 input within a
// few tens of CPU-milliseconds, and pixel-exact with libjpeg-turbo 2.1.5
// (what Pillow 9.4, and so the PyTorch/Keras pipelines users compare
// against, decode with).
//
// # What it decodes
//
// Baseline, extended (8-bit) and progressive Huffman-coded JPEG with 1
// (grey), 3 (YCbCr or RGB) or 4 (CMYK or YCCK) components, any sampling
// factors with integral ratios (4:4:4, 4:2:2, 4:2:0, 4:4:0, 4:1:1, ...),
// restart intervals, and files without DHT segments (the standard tables
// are used, as libjpeg-turbo does for Motion-JPEG). Not supported:
// arithmetic coding, lossless and hierarchical JPEG, 12-bit samples, and
// heights given by a DNL marker; these are UnsupportedError.
//
// Output is planar 8-bit (see Image): grey for one-component files, RGB
// otherwise. The colour space of a file is guessed as libjpeg does (JFIF,
// Adobe APP14 transform, component identifiers). CMYK and YCCK become RGB
// as Pillow's Image.open(f).convert("RGB") makes them: libjpeg's CMYK read
// as Adobe-inverted and passed through Pillow's cmyk2rgb.
//
// Options.Scale 2, 4 and 8 decode straight to 1/2, 1/4 and 1/8 size in
// the DCT domain, as djpeg -scale 1/N does; Options.Region restricts the
// IDCT, upsampling and colour conversion to the blocks a crop needs.
// DecodeHeader reads the size, the component count and the EXIF
// orientation without touching the scan data.
//
// # Exactness
//
// The pixels are those of djpeg -dct int (the default islow IDCT with
// fancy upsampling; equal to Pillow's Image.open(f).convert("RGB")) at
// every scale, ported from libjpeg-turbo: jidctint.c's jpeg_idct_islow,
// jidctred.c's reduced 4x4, 2x2 and 1x1 IDCTs, jdmaster.c's choice of a
// larger IDCT for subsampled chroma at reduced scales (4:2:0 chroma at
// 1/2 goes through the 8x8 IDCT and is not upsampled at all), jdsample.c's
// upsampling choices (h2v1, h1v2 and h2v2 triangle filters when the
// reduced block size exceeds 1 and, for h2, the component is more than 2
// samples wide; box replication otherwise; merged upsampling is never
// used with fancy upsampling on) with jdmainct.c's replicated context rows
// at the top and bottom, and jdcolor.c's fixed-point YCbCr tables. The
// tests compare every test file with djpeg 2.1.5 run at test time, at
// scales 1, 1/2, 1/4 and 1/8, whole and by regions, and with Pillow 9.4 at
// full size: every case is equal, byte for byte (no tolerance).
//
// IDCT results beyond the sample range are saturated through libjpeg's
// range-limit table, as its C code does; that table wraps values beyond
// +-512 where the SIMD IDCTs djpeg runs on x86-64 saturate, but only
// coefficients no encoder produces (corrupt data) reach there. The
// all-zero column and row shortcuts of the C IDCTs are left out where
// they do not pay: they compute the same values.
//
// # Errors
//
// Every malformed or truncated input is an error, never a panic: where
// libjpeg warns and fills the rest of the image with grey (scan data that
// end early, a missing EOI), this package returns ErrTruncated or another
// FormatError naming what was wrong (and in which scan), so that the
// loader can skip the file. A damaged restart marker, a Huffman code that
// is not in its table or a coefficient run past the end of a block, which
// libjpeg recovers from with a warning, are errors too, and so is a
// progressive file whose scans leave some coefficient short of full
// precision (what a download cut between scans looks like; libjpeg shows
// the coarser image). Frames of more than 1<<27 pixels, or with more
// blocks than the file has bits, are refused before anything is
// allocated.
//
// One thing goes unchecked by design: at scale 1/8 the AC scans of a
// progressive file's full-resolution components are stepped over unread
// (the 1x1 IDCT uses only the DC), so damage inside them goes unnoticed;
// it cannot change the output either.
//
// # Speed
//
// Each entropy-coded segment is first copied out of the file with its
// 0xff00 byte stuffing undone, so that the bit buffer (64 bits, MSB first)
// is refilled eight bytes at a time without byte checks, unconditionally
// before every symbol (cheaper than the mispredicted branches of a
// refill-when-low test). An 11-bit lookup table decodes one or two whole
// AC symbols at a time, run and extended coefficient included (stb_image's
// "fast AC" table, doubled), writing dequantized coefficients straight
// into natural order; a 12-bit table skips several symbols at a time in
// blocks whose coefficients are not needed (outside the Region, and the AC
// coefficients of luma at scale 1/8, which the 1x1 IDCT ignores). The bit
// buffer travels between the block decoders in registers. Sequential
// files are converted to RGB one MCU row behind the entropy decoder, with
// the triangle filters working on four samples per 64-bit word; only
// progressive files keep a whole-image coefficient buffer, with a bit mask
// of each block's non-zero coefficients so that refinement scans touch
// only those.
//
// On an AMD EPYC (Zen 5, 2 vCPUs, other jobs running), a 4000x3000
// quality-90 4:2:0 photo of 3.6 MB took about 79 CPU-ms at full size, 42
// at 1/2, 32 at 1/4 and 20 at 1/8 (18 for a 224x224 crop at 1/8), where
// image/jpeg took 150 and Pillow 9.4 about 90 (draft mode, 1/8: 29).
//
// # Origin
//
// The marker parsing, Huffman table handling and progressive scan
// decoding are forked from Go's image/jpeg (Go 1.26, BSD licence; see
// LICENSE; the forked files keep its copyright notice). The changes: the
// input is a byte slice; the bit reader, the Huffman tables and the
// sequential scan decoder were rewritten for speed; the IDCT, upsampling
// and colour conversion were replaced by ports of libjpeg-turbo 2.1.5's
// (IJG and BSD licences; see README.ijg and LICENSE-libjpeg-turbo.md);
// markers, Huffman tables and progressive refinement are validated and
// handled as libjpeg-turbo does (including the standard Huffman tables
// for files without DHT); any integral sampling ratio is accepted; the
// colour space is guessed as libjpeg does (4-component files without an
// Adobe marker are CMYK, not an error); errors replace libjpeg's
// warnings; and scaling, regions and the EXIF orientation were added.
package jpeg
