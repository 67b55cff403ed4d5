package dataset

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ImageFiles expands paths: a file stays as given, a folder gives its image files (those
// of an image folder: JPEG, PNG, GIF, BMP, TIFF, WebP; its subfolders' too, hidden ones
// left out), sorted.
func ImageFiles(paths []string) ([]string, error) {
	var files []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if path != p && strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.IsDir() && IsImageFile(path) {
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("%s: no image files (%s)", p, strings.Join(ImageExtensions(), ", "))
		}
		slices.Sort(found)
		files = append(files, found...)
	}
	return files, nil
}
