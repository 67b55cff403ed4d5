// Package finetune runs fine-tuning recipes: it reads the recipe (Config, from YAML or
// built in Go), reads the base model, appends the head (package headbuilder), splits the
// parameters into ordered layer groups with the head last, and trains in stages with a
// learning rate per group — the ULMFiT / fastai recipe: the head first with the base
// frozen, then every group, earlier groups at smaller rates.
//
// A Trainer owns one optimizer per group (subpackage optim), so each group's state
// carries from stage to stage; a stage's learning-rate spec (scalar, ULMFiT's
// {max, factor}, fastai's {slice}, or a rate per group) and schedule (subpackage
// schedule) give every step's rate. Frozen groups get no gradient, no update and no
// state. Hooks attach progress, metrics.jsonl, curves.png, checkpoints and the best
// model to the loop; Resume continues a run from its checkpoint and ends with the
// weights an uninterrupted run would have.
//
// Every random draw is a pure function of the seed and the position (epoch, step,
// example), so a checkpoint holds no generator state and a run is reproducible.
package finetune
