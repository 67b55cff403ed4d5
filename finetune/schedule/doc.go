// Package schedule holds learning-rate schedules and per-group learning-rate spreads for
// fine-tuning: the two halves of "what rate does this layer group use at this step".
//
// # Schedules
//
// A Schedule is a pure function of progress: Factor(step, total) returns the multiplier of
// a base learning rate at the 0-based step out of total steps of a stage. Each layer group
// has its own base rate (see Spread below) and its rate at a step is base*Factor, so one
// schedule shapes every group alike and the ratios between groups stay fixed, as in fastai
// and ULMFiT. Steps outside [0, total) are clamped into it.
//
//   - Constant: factor 1.
//   - OneCycle: fastai's fit_one_cycle / PyTorch's OneCycleLR (cosine, two phases): cosine
//     warm-up from 1/Div to 1 over PctStart of the steps, then cosine annealing to
//     1/(Div*DivFinal). It also cycles momentum (SGD) or beta1 (Adam) from MomMax down to
//     MomMin and back, through the optional MomentumSchedule interface. Step indexing is
//     PyTorch's: step k of the stage is the learning rate PyTorch uses for its k-th
//     optimizer step, and the last step reaches the final rate exactly.
//   - SlantedTriangular: ULMFiT's slanted triangular rate (Howard & Ruder 2018, eq. 3).
//   - Cosine: cosine annealing from 1 at the first step to Floor at the last.
//   - Warmup: linear warm-up over a number or a fraction of the steps, then constant or
//     cosine annealing.
//   - Plateau: PyTorch's ReduceLROnPlateau. Not a function of the step: its Factor is 1,
//     and a PlateauState, fed a metric each epoch (Plateau.Step), holds the reduced
//     rates.
//
// Parse builds any of them from a name and an options map, with errors that name the
// offending option and the valid values. Spec is a schedule as a recipe writes it
// (`schedule: onecycle` or `schedule: {name: stlr, cut_frac: 0.2}`): it decodes itself
// from YAML strictly (an option's value must be of its kind: a number, a whole number,
// or true or false), writes itself back in the same form, and describes its forms and
// options, with their defaults, as a JSON Schema.
//
// # Spreads
//
// A Spread turns a stage's learning-rate spec into one rate per layer group, given the
// model's ordered groups (earliest first, head last) and the groups the stage trains, like
// fastai's set_hyper:
//
//   - Scalar: one rate for every trained group.
//   - ULMFiT{Max, Factor}: the last group (the head) gets Max, every group below gets the
//     rate of the group above divided by Factor (2.6 in the paper).
//   - Slice{Lo, Hi}: fastai's slice(lo, hi), rates spread geometrically from the first
//     group to the last. Slice{Hi: hi} is fastai's slice(hi): hi/10 for all but the last.
//   - PerGroup: an explicit rate per group name.
//
// Positions in ULMFiT and Slice count over ALL groups of the model, not only the trained
// ones, as fastai does: a group's rate depends on where it sits in the model and not on
// which other groups a stage happens to train. Rates returns one rate per model group, 0
// for the groups the stage does not train. Rates is a stage's lr as a recipe writes it
// (1e-3, {max, factor}, {slice: [lo, hi]} or a rate per group, group names as written),
// decoded strictly from YAML (a number, not a string holding one) and turned into a
// Spread by its Spread method.
//
// Besides the standard library, the package uses go.yaml.in/yaml/v3 for the recipe forms
// of Spec and Rates.
package schedule
