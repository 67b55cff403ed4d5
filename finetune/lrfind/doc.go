// Package lrfind is the learning-rate range test as fastai's Learner.lr_find runs it
// (Smith, "Cyclical learning rates", 2017): train for a number of steps with the rate
// growing exponentially from Start to End, record the loss smoothed as fastai's
// Recorder smooths it (an exponential moving average with beta 0.98, debiased), stop
// when the smoothed loss exceeds four times the best so far or is not finite, and
// suggest a rate from the curve: fastai's "valley" (two thirds of the way down the
// longest falling stretch) and "steep" (the steepest fall). Plot draws the curve with
// the suggestions marked.
//
// It knows nothing about models: package finetune runs the steps (keeping the ratios
// of a stage's per-group rates, and restoring the weights afterwards) and feeds the
// losses to a Recorder.
package lrfind
