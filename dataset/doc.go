// Package dataset reads labelled image data and turns it into batches of float32 NCHW
// tensors for training and evaluating image classifiers: the `data:` section of a toolkit
// config. It knows nothing about models or training; finetune drives it.
//
// # Sources
//
// A Source is a labelled collection with class names:
//
//   - OpenImageFolder reads a folder with one subfolder per class (PNG and JPEG files;
//     classes sorted by name). Files are decoded lazily, one per access; their headers are
//     checked when the folder is opened, and Options.OnBadImage says whether a bad file fails
//     the open ("fail", naming the file) or is dropped and listed by Source.Skipped ("skip").
//     Options.Verify decodes every file fully at open time instead. Open the validation and
//     test folders with Options.Classes set to the training source's classes so that label
//     indices agree.
//   - OpenIDX reads MNIST and Fashion-MNIST IDX files, gzipped or not, into memory.
//   - Open dispatches on the config's format name ("imagefolder", "idx").
//
// Anything implementing Examples can stand in for a Source; a View is a subset of one.
// Split makes a stratified, seeded train/validation split (the config's val_split): each
// class gives round(fraction x its size) examples to validation.
//
// # Preprocessing
//
// Preprocess converts a decoded image to the model's input: 8-bit RGB or grayscale (PIL's
// luma for 1-channel models), bilinear resize as PyTorch's F.interpolate with
// align_corners=False and antialias=False, grayscale replicated for 3-channel models, then
// normalisation by mode, as Keras' preprocess_input defines the modes:
//
//	caffe  RGB->BGR, 0-255, minus [103.939, 116.779, 123.68] (BGR order)
//	torch  x/255, then (x - mean)/std, ImageNet statistics unless overridden
//	tf     x/127.5 - 1
//	none   0-255 as float32
//
// Augment adds training augmentation: PadCrop (pad with black, crop a random window of the
// input size, torchvision's RandomCrop(size, padding) on PIL images) then HFlip (flip with
// probability 1/2). MeanStd computes per-channel statistics for custom normalisation.
//
// # Batching and determinism
//
// A Loader yields an epoch's batches through Loader.Epoch, a range-over-func iterator.
// A pool of goroutines decodes and preprocesses examples a bounded number of batches ahead of
// the consumer. Batch memory is reused once the loop body returns.
//
// Every random choice is derived from the caller's seed with fixed algorithms (SplitMix64
// key derivation, PCG streams): the shuffle from (seed, epoch), each example's augmentation
// from (seed, epoch, example index). An epoch's output is therefore a pure function of the
// seed, the epoch number and the options, byte for byte the same for any number of workers,
// and resuming a run at an epoch boundary (or at a batch, with EpochFrom) needs no RNG state
// beyond the seed and the epoch counter. Streams for different purposes (split, shuffle,
// augmentation) are separated inside the package, so one run seed can feed them all. Number
// epochs across a run's stages (0, 1, 2, ... over the whole run) so that each stage sees new
// shuffles and augmentations.
package dataset
