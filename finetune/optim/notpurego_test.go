//go:build !purego

package optim

const puregoBuild = false
