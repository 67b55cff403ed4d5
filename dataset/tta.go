package dataset

// Test-time augmentation: the views of an image that an evaluation averages over.

// TTAViews are the preprocessings whose outputs, each also flipped left to right
// (FlipInputs), test-time augmentation averages: the evaluation transform itself, and with
// Resize crop also the crops at the four corners of the resized picture (fastai's TTA
// crops its corners the same way). The first view is p.
func TTAViews(p Preprocess) []Preprocess {
	views := []Preprocess{p}
	if p.Resize != ResizeCrop {
		return views
	}
	for _, a := range Corners {
		v := p
		v.Anchor = a
		views = append(views, v)
	}
	return views
}

// FlipInputs mirrors n preprocessed images (c x h x w floats each) left to right in
// place: the horizontal flip of test-time augmentation, equal to flipping the picture
// before normalisation.
func FlipInputs(images []float32, n, c, h, w int) {
	for i := range n * c * h {
		row := images[i*w : (i+1)*w]
		for a, b := 0, w-1; a < b; a, b = a+1, b-1 {
			row[a], row[b] = row[b], row[a]
		}
	}
}
