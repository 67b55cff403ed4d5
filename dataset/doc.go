// Package dataset reads labelled image data and turns it into batches of float32 NCHW
// tensors for training and evaluating image classifiers: the `data:` section of a toolkit
// config. It knows nothing about models or training; finetune drives it.
//
// # Sources
//
// A Source is a labelled collection with class names:
//
//   - OpenImageFolder reads a folder with one subfolder per class (JPEG, PNG, GIF, BMP,
//     TIFF and WebP files; classes sorted by name). Every file is decoded once when the
//     folder is opened, in parallel (a JPEG at 1/8 scale, which still reads its whole
//     scan), and Options.OnBadImage says whether a file that does not decode fails the
//     open (a *BadImagesError naming it) or is dropped and listed by Source.Skipped;
//     Options.Quick checks headers only. Open the validation and test folders with
//     Options.Classes set to the training source's classes so that label indices agree.
//   - OpenFiles opens a list of files (one unnamed class): images to classify.
//   - OpenIDX reads MNIST and Fashion-MNIST IDX files, gzipped or not, into memory.
//   - Open dispatches on the config's format name ("imagefolder", "idx").
//
// Anything implementing Examples can stand in for a Source; a View is a subset of one.
// Collections of files also implement Files, which lets the Loader read the bytes itself
// and decode a JPEG only as far as its crop needs. Split makes a stratified, seeded
// train/validation split (the config's val_split).
//
// # Decoding
//
// JPEG files go through internal/jpeg, which gives libjpeg-turbo's pixels, as Pillow shows
// them, and can decode at 1/2, 1/4 or 1/8 scale in the DCT domain and skip the blocks
// outside a region; other formats through image.Decode (golang.org/x/image for BMP, TIFF
// and WebP). Pictures are made upright by their EXIF orientation (Pillow's
// ImageOps.exif_transpose) and held as 8-bit planes (picture), as Pillow holds "L" and
// "RGB" images. DecodeFile does all this for one file.
//
// # Preprocessing and augmentation
//
// Preprocess is the deterministic transform of evaluation: the resize (Resize: squish,
// crop or pad, with CropPct and Interpolation), then normalisation by mode, as Keras'
// preprocess_input defines the modes:
//
//	caffe  RGB->BGR, 0-255, minus [103.939, 116.779, 123.68] (BGR order)
//	torch  x/255, then (x - mean)/std, ImageNet statistics unless overridden
//	tf     x/127.5 - 1
//	none   0-255 as float32
//
// The resize and every augmentation are torchvision's operations on PIL images, computed
// with Pillow's own arithmetic (fixed-point antialiased resampling, nearest-neighbour
// affine maps in 16.16 fixed point, C float blends truncated to 8 bits), so that the bytes
// agree with torchvision's: the tests compare them to the grey level. Augment adds the
// training steps, in a fixed order: RandomResizedCrop (replacing the resize), PadCrop,
// HFlip, VFlip, Rotate, ColorJitter, TrivialAugment, then RandomErasing on the normalised
// tensor, and Mixup or Cutmix over each batch (Batch.Mix says how). Without Resize and
// without the 8-bit augmentations, the float path of the first versions runs: a bilinear
// stretch as PyTorch's F.interpolate without antialiasing, on floats, pad-crop and flip,
// normalisation; recipes written for it keep their exact inputs.
//
// Denormalise and DrawGrid turn inputs back into a labelled picture (toolkit preview).
// MeanStd computes per-channel statistics for custom normalisation.
//
// # Batching and determinism
//
// A Loader yields an epoch's batches through Loader.Epoch, a range-over-func iterator.
// A pool of goroutines decodes and preprocesses examples a bounded number of batches ahead of
// the consumer. Batch memory is reused once the loop body returns.
//
// Every random choice is derived from the caller's seed with fixed algorithms (SplitMix64
// key derivation, PCG streams): the shuffle from (seed, epoch), each example's augmentation
// from (seed, epoch, example index), a batch's mixup or cutmix from (seed, epoch, batch).
// A JPEG's reduced-scale decoding (LoaderOptions.Draft) depends on its crop alone. An epoch's output is therefore a pure function of the
// seed, the epoch number and the options, byte for byte the same for any number of workers,
// and resuming a run at an epoch boundary (or at a batch, with EpochFrom) needs no RNG state
// beyond the seed and the epoch counter. Streams for different purposes (split, shuffle,
// augmentation) are separated inside the package, so one run seed can feed them all. Number
// epochs across a run's stages (0, 1, 2, ... over the whole run) so that each stage sees new
// shuffles and augmentations.
package dataset
