// Package extract computes a convolutional base's features for a folder of images, as
// Keras users call base.predict on their images to train a classifier on the features
// elsewhere: toolkit extract writes them to OUT_DIR/features.npy (float32, one row per
// image, the base's output shape after it) and lists the images in OUT_DIR/files.txt
// (one per line, in the rows' order, relative to the folder).
//
// An Extractor is a base with the preprocessing of its input: from a model file (Load:
// a base, or a classifier whose head is cut off where onnx.FindHead finds it, with the
// preprocessing of its metadata) or from a recipe (New, with finetune.Base's model and
// preprocessing). Images are every image file under the folder (dataset.ImageFiles,
// sorted), each decoded once at the start to leave out or name those that do not
// decode, then prepared with the evaluation transform in batches.
//
// Extraction runs in shards over processes (package shard): ExtractShard computes the
// whole batches of one shard, exactly as one process computes them, and writes them to
// a part file; Merge streams the parts into the outputs with the code that writes one
// process's, so that they are one process's, byte for byte. Every shard lists and
// decodes the whole folder, so that all agree on the images and their order.
package extract
