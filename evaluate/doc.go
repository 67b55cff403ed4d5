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
package evaluate
