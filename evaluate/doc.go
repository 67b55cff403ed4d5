// Package evaluate runs a fine-tuned classifier (an ONNX file, as toolkit finetune writes
// it) on labelled or unlabelled images: Evaluate measures it on a labelled folder (loss,
// accuracy, top-k accuracy, per-class precision, recall and F1, the confusion matrix,
// and PlotConfusion draws the matrix), Predict gives the top classes of single images.
//
// Load reads what it needs from the model itself: the input size from the graph's
// input, the preprocessing and the class names from the metadata finetune stores
// (toolkit.preprocess, toolkit.classes), so that no recipe is needed. A model without
// class names reports class indices and says so in Classifier.Notes; one without
// preprocessing metadata gets PyTorch's ImageNet normalisation (mode torch), the most
// common, and says so too.
//
// Both run in shards over processes (package shard): EvaluateShard and PredictShard
// compute the whole batches of one shard, exactly as one process computes them, and
// write them to a part file; MergeEvaluation and MergePredictions join the parts and
// finish them with the code that finishes one process's run, so that the report, its
// plots and the predictions are one process's, byte for byte. Every shard opens the
// whole folder (each file is decoded once then, to find those that do not decode) so
// that all agree on the images and their order; only the model's work is divided.
package evaluate
