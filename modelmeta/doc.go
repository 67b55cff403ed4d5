// Package modelmeta holds the metadata that toolkit finetune stores in an exported
// model's metadata_props, so that a model runs without its recipe: the class names in
// logit order (toolkit.classes, a JSON list), the input preprocessing (toolkit.preprocess,
// the JSON of a dataset.Preprocess) and the recipe (toolkit.recipe, YAML). Package
// finetune writes them (Set); package evaluate reads them (Get). Neither knows the
// other: these keys are all they share.
package modelmeta
