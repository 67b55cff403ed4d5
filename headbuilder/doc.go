// Package headbuilder puts a new, freshly initialised classification head on a headless
// convolutional base: it turns a Spec (the `head:` section of the config) into ONNX IR
// nodes and initializers appended to the base's graph. It works on the onnx package's
// IR only and knows nothing of gorgonia or training.
//
// # The head
//
// Append adds, after the base's single output x:
//
//	pool flatten:  head.flatten = Flatten(x, axis=1)
//	pool avg:      head.pool = GlobalAveragePool(x);  head.flatten = Flatten(head.pool, axis=1)
//	pool max:      head.pool = GlobalMaxPool(x);      head.flatten = Flatten(head.pool, axis=1)
//	each hidden layer i (a width in Spec.Dense):
//	               head.dense<i>   = Gemm(prev, head.dense<i>.weight, head.dense<i>.bias, transB=1)
//	               head.act<i>     = Relu | LeakyRelu(alpha 0.01) | Tanh | Sigmoid  (none: left out)
//	               head.dropout<i> = Dropout(head.act<i>)                          (Spec.Dropout > 0)
//	classifier:    logits = Gemm(prev, head.logits.weight, head.logits.bias, transB=1)
//
// Node names and tensor names are the same strings (head.pool, head.flatten, head.dense0,
// head.act0, head.dropout0, ...; the classifier node is head.logits), except the
// classifier's output, which is the model's only graph output "logits", [N, classes].
// Every new tensor gets a value info with the symbolic batch dimension "N"; the base's
// old output stays declared as an intermediate value.
//
// Weights use PyTorch's Linear layout [out, in] (hence transB=1), biases are [out]: a
// head's initializers load straight into torch.nn.Linear. ParamNames lists them in
// order and IsHeadParam recognises them, so the trainer can put them in the "head" group.
//
// A 4-D base output [N C H W] takes any pooling; a 2-D output [N features] takes pool
// flatten only (its Flatten is then the identity). Any other rank, a zero-sized or
// unknown dimension, or a base whose names clash with the head's is an error that names
// the tensor, its shape and the input size assumed.
//
// # Dropout
//
// Dropout follows each hidden activation (Keras's Dense -> Dropout, fastai's
// LinBnDrop), never the logits. A head without hidden layers applies it to the pooled
// features, just before the classifier (Keras's GlobalAveragePooling2D -> Dropout ->
// Dense), so that a configured dropout is never silently ignored.
//
// Before opset 12 the ratio is Dropout's "ratio" attribute. From opset 12 on it is an
// input, the float scalar initializer head.dropout<i>.ratio. That initializer is a
// constant, not a parameter: a backend must not train it (nor decay, clip or count
// it among the parameters it optimises). ParamNames leaves it out and IsHeadParam says
// false for it; IsHeadConstant says true. No training_mode input is given, so the
// written model runs Dropout as the identity; a backend applies it when it trains.
//
// # Opsets
//
// The head uses only Flatten, GlobalAveragePool, GlobalMaxPool, Gemm, Relu, LeakyRelu,
// Tanh, Sigmoid and Dropout, in forms valid from opset 7 (MinOpset) on, and follows
// the base's default-domain opset. The new model keeps the base's IR version, opset
// imports, producer, domain, doc string and metadata. For IR version 3 models, whose
// initializers must also be graph inputs, the new initializers are added to the inputs.
//
// # Initialisation
//
// Biases start at zero. Weights follow one rule, close to what Keras and fastai users
// expect:
//
//   - Init "he" (the default): a hidden layer followed by relu or leaky_relu is
//     He/Kaiming normal, N(0, 2/fan_in), as fastai initialises its head's Linear layers
//     (kaiming_normal_, untruncated); every other layer, the classifier included, is
//     Glorot/Xavier uniform, U(-l, l) with l = sqrt(6/(fan_in+fan_out)), Keras's Dense
//     default, since He's factor 2 assumes a ReLU after the layer.
//   - Init "glorot": every layer is Glorot uniform, as in Keras.
//
// PyTorch's own Linear default, kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(fan_in),
// 1/sqrt(fan_in)), is not offered: its variance, 1/(3 fan_in), is a sixth of He's, so
// activations shrink through every ReLU layer.
//
// Randomness comes from math/rand/v2's PCG only, never the clock or a global source.
// Each weight matrix has its own stream, seeded by (Spec.Seed, FNV-1a 64 of the weight's
// name), and its values come from PCG's raw 64-bit outputs through fixed transforms
// (53-bit uniforms, Box-Muller normals), so the same Seed gives bit-identical weights,
// and a layer's weights depend only on the seed, its name, its shape and its scheme.
package headbuilder
