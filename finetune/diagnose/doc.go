// Package diagnose detects failing training runs from the numbers a training loop can
// sample cheaply: the loss and accuracy of each step, the predicted classes, and, every
// few steps, per layer group the gradient norm, the update-to-weight ratio |dw|/|w| and
// the fraction of dead ReLU units. It knows nothing about models, recipes or files: a
// Monitor takes Step and Epoch samples and returns Signals, each naming its Kind, the
// group it concerns, the value seen and the limit it crossed, what was seen and what it
// means. Package finetune gathers the samples, turns signals into findings with the
// recipe lines that fix them, and repairs the recipe when asked.
//
// The kinds, and the limits of DefaultThresholds:
//
//	non_finite      NaN or Inf in the loss, a gradient or a weight (reported by the loop)
//	loss_exploding  the loss far above chance (ln C) and above where the stage started
//	loss_rising     the smoothed loss well above the lowest it reached in the stage
//	chance          predictions at chance: accuracy near 1/C with the loss flat at ln(C),
//	                or every prediction on one class (a head trained alone, the base
//	                frozen, or a stage that starts at chance: judged at the end of its
//	                epochs, two in a row with training and validation accuracy at chance
//	                and the loss flat since the stage's first epoch)
//	grad_vanishing  a trained group's gradient is zero (or negligible against its weights)
//	grad_exploding  a trained group's gradient norm far above its weight norm
//	dead_relu       most ReLU units of a group output zero for the whole batch
//	update_ratio    |dw|/|w| per step far above fine-tuning's, in a pretrained group
//	                (the base is being rewritten, not tuned) or in the head
//	overfitting     after validation: training accuracy far above validation accuracy
//	                while the validation loss rises
//
// The limits were set on the toolkit's demo (a VGG-style base fine-tuned on five
// Fashion-MNIST classes) so that its sound recipes raise nothing over several seeds,
// and its failing recipes (every group from the start at a high rate, an exploding
// head) are caught within their first epoch; AutoTrainer (ICSE 2021) monitors the same
// symptoms. Every detector waits for enough steps of a stage that a fresh head's first,
// noisy steps are not mistaken for failure, and every signal is returned once per stage,
// group and kind.
package diagnose
