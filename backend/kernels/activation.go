package kernels

import "math"

// Element-wise activations. Forward functions allow y to alias x and
// backward functions allow dx to alias dy. Backward functions take whichever
// of x and y determines the derivative: Relu and LeakyRelu take x (Relu's y
// works as well, since y > 0 exactly where x > 0), Sigmoid and Tanh take y.

func need2[T any](name string, a, b []T) {
	if len(b) < len(a) {
		panic("kernels: " + name + ": output has " + itoa(len(b)) + " elements, input " + itoa(len(a)))
	}
}

// ReluForward sets y = max(x, 0).
func ReluForward[T Float](x, y []T) {
	need2("ReluForward", x, y)
	for i, v := range x {
		if v > 0 {
			y[i] = v
		} else {
			y[i] = 0
		}
	}
}

// ReluBackward sets dx = dy where x > 0 and 0 elsewhere (the derivative at
// 0 is taken as 0, as in PyTorch).
func ReluBackward[T Float](x, dy, dx []T) {
	need2("ReluBackward", x, dy)
	need2("ReluBackward", x, dx)
	for i, v := range x {
		if v > 0 {
			dx[i] = dy[i]
		} else {
			dx[i] = 0
		}
	}
}

// LeakyReluForward sets y = x for x >= 0 and alpha*x otherwise (ONNX
// LeakyRelu; ONNX's default alpha is 0.01).
func LeakyReluForward[T Float](alpha T, x, y []T) {
	need2("LeakyReluForward", x, y)
	for i, v := range x {
		if v < 0 {
			y[i] = alpha * v
		} else {
			y[i] = v
		}
	}
}

// LeakyReluBackward sets dx = dy where x > 0 and alpha*dy elsewhere.
func LeakyReluBackward[T Float](alpha T, x, dy, dx []T) {
	need2("LeakyReluBackward", x, dy)
	need2("LeakyReluBackward", x, dx)
	for i, v := range x {
		if v > 0 {
			dx[i] = dy[i]
		} else {
			dx[i] = alpha * dy[i]
		}
	}
}

// SigmoidForward sets y = 1/(1+exp(-x)), computed without overflow for
// large |x|.
func SigmoidForward[T Float](x, y []T) {
	need2("SigmoidForward", x, y)
	for i, v := range x {
		f := float64(v)
		if f >= 0 {
			y[i] = T(1 / (1 + math.Exp(-f)))
		} else {
			e := math.Exp(f)
			y[i] = T(e / (1 + e))
		}
	}
}

// SigmoidBackward sets dx = dy*y*(1-y) from the sigmoid's output y.
func SigmoidBackward[T Float](y, dy, dx []T) {
	need2("SigmoidBackward", y, dy)
	need2("SigmoidBackward", y, dx)
	for i, v := range y {
		dx[i] = dy[i] * v * (1 - v)
	}
}

// TanhForward sets y = tanh(x).
func TanhForward[T Float](x, y []T) {
	need2("TanhForward", x, y)
	for i, v := range x {
		y[i] = T(math.Tanh(float64(v)))
	}
}

// TanhBackward sets dx = dy*(1-y²) from tanh's output y.
func TanhBackward[T Float](y, dy, dx []T) {
	need2("TanhBackward", y, dy)
	need2("TanhBackward", y, dx)
	for i, v := range y {
		dx[i] = dy[i] * (1 - v*v)
	}
}
