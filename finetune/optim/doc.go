// Package optim holds the optimizers of fine-tuning: SGD (momentum, Nesterov), Adam and
// AdamW, written over plain float32 slices, with global gradient-norm clipping and
// checkpointable state.
//
// The formulas are PyTorch's (torch.optim.SGD with dampening 0, Adam, AdamW, and
// torch.nn.utils.clip_grad_norm_), computed in float32 in PyTorch's order of operations
// (except that Adam folds its two divisions into one, see Adam), and the tests check them
// against PyTorch 1.13 step by step to 1e-6.
//
// # Parameters and state
//
// A Param is a named parameter tensor flattened to its values and the gradient of the
// current batch. An Optimizer keeps its state (step count, moment buffers) per parameter
// name, not per position, so the state of a parameter survives when a stage trains a
// different set of parameters or passes them in a different order. Parameters that are not
// passed to Step are left alone and gain no state: a frozen layer costs nothing and starts
// from fresh moments, with its own step count of 0, on the step it is unfrozen. Each
// parameter counts its own steps for Adam's bias correction, as PyTorch does.
//
// # Layer groups
//
// One Optimizer serves the whole model. Discriminative learning rates come from calling
// Step once per layer group with that group's rate:
//
//	for i, g := range groups {
//		if rates[i] > 0 {
//			opt.Step(g.Params, rates[i]*sched.Factor(step, total))
//		}
//	}
//
// This is equivalent to PyTorch's param groups with one "lr" each, and the whole optimizer
// state is one State for the checkpoint. Parameter names must be unique across groups.
// One Optimizer per group works as well and gives the same numbers: state never mixes
// between parameters either way.
// Momentum (SGD) and beta1 (Adam) apply to every group and may change between steps, for
// one-cycle's momentum cycle (SetMomentum).
//
// State returns a deep copy of everything an optimizer keeps, in a struct that encoding/gob
// and encoding/json both round-trip bit for bit (JSON only while the buffers hold finite
// numbers); Load puts it back.
//
// Step spreads large parameter sets over GOMAXPROCS goroutines; an Optimizer is not safe
// for concurrent use. The package depends on nothing but the standard library.
package optim
