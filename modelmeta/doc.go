// Package modelmeta holds the metadata that toolkit finetune stores in an exported
// model's metadata_props, so that a model runs without its recipe: the class names in
// logit order (toolkit.classes, a JSON list), the input preprocessing (toolkit.preprocess,
// the JSON of a dataset.Preprocess), the recipe (toolkit.recipe, YAML) and, for a
// multi-label model, its task (toolkit.task: multilabel) and each label's threshold
// (toolkit.thresholds, a JSON list). Package
// finetune writes them (Set); package evaluate reads them (Get). Neither knows the
// other: these keys are all they share.
package modelmeta
