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
// state, BatchNormalization included (it stays in inference mode); with WithTrainBN the
// BatchNorm layers of frozen groups keep training, as fastai's train_bn does. The layer
// groups are the base's stages (groups: auto, onnx.Blocks), a preset of package models,
// or globs.
//
// The loop (loop.go) runs stages of epochs of steps, and a step (step.go) is gradients
// (one batch forward and backward: the loss, each trained group's gradients, clipped)
// then update (the schedule's rate per group, the optimizers). Everything else attaches
// to the loop as named hooks (Hook, a struct of typed callbacks, called by one dispatch)
// in a fixed order: metrics, validation, diagnostics (which sample at the points before
// and after the update), best (the best epoch by output.best, val_loss by default:
// best.onnx), early_stopping, history (the epoch's record), then the run folder's
// (metrics.jsonl, curves.png, best.onnx, checkpoint/, model.onnx; through the trainer's
// exported methods alone) and the caller's. A run folder holds one run: New refuses one
// with another run's files (RunExistsError) unless WithOverwrite, which removes them;
// Resume continues the run in it. A hook's State is saved in the checkpoint, so the
// checkpoint's Progress holds only the position; Resume continues a run and ends with
// the weights an uninterrupted run would have. An epoch's checkpoint is saved where the
// epoch ends its stage, else at most every output.checkpoint_every seconds (on VGG19 at
// 32 px, saving every 5-second epoch cost 10-15% of the training time), by a
// checkpointWriter in the background while the next epoch trains: its files are written
// from the live state, which the next step's optimizer update waits for, then synced
// and swapped in for the previous checkpoint; the next checkpoint, an interruption and
// the end of Run wait for the whole save. Each layer group's weights are a file of
// external data beside the checkpoint's weights.onnx; a group whose weights have not
// changed since the previous checkpoint (a frozen base) is linked from it rather than
// written again. The frozen-base feature cache (featureCache) serves an epoch that
// trains only above a frozen part from that part's stored activations.
//
// Diagnostics (subpackage diagnose) watch every run: each Finding is reported once, with
// what was seen, what it means and the recipe lines that fix it, to the Finding hooks
// and as a line of metrics.jsonl. With diagnostics: {repair: true} a finding with a known
// fix sends the run back to the start of the failing stage with the rest of the recipe
// rewritten (repair.go is the one place recipes are rewritten), recorded as a Repair and
// written to recipe.repaired.yaml. LRFind is fastai's learning-rate range test on a
// stage (subpackage lrfind), run as fastai runs it: a hook that sets each step's rate
// before the update and records its loss, on the same epoch loop.
//
// Every random draw is a pure function of the seed and the position (epoch, step,
// example), so a checkpoint holds no generator state and a run is reproducible.
package finetune
