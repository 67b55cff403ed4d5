// Package yamlnode decodes YAML documents strictly into Go values, from the parsed node
// tree (go.yaml.in/yaml/v3), with errors that name the line and the key: an unknown
// key (with the nearest valid one), a key given twice, a value of the wrong kind (a
// string where a number belongs, a number where a list belongs), and the errors of
// types that decode themselves (yaml.Unmarshaler), placed under the key they sit at.
//
// Keys are matched exactly as written, so map keys keep their case (viper lowercases
// them). The recipe schema (package finetune and its subpackages) decodes through it,
// so that every mistake in a recipe is reported the same way:
//
//	14: unknown key "stages[1].learning_rate"; did you mean "lr"? (valid keys: ...)
//	9: data.batch_size: "many"; want a whole number
package yamlnode
