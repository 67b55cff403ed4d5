//go:build unix

package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestModeFollowsUmask checks that a written file has the mode os.Create gives a new
// file (0666 less the umask), for several umasks, and that os.Create agrees.
func TestModeFollowsUmask(t *testing.T) {
	dir := t.TempDir()
	for _, umask := range []int{0o022, 0o002, 0o077, 0o027} {
		old := syscall.Umask(umask)
		path := filepath.Join(dir, "out.bin")
		err := WriteFile(path, []byte("data"))
		created := filepath.Join(dir, "created.bin")
		f, cerr := os.Create(created)
		syscall.Umask(old)
		if err != nil || cerr != nil {
			t.Fatal(err, cerr)
		}
		f.Close()
		want := fs.FileMode(0o666 &^ umask)
		for _, p := range []string{path, created} {
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Mode().Perm(); got != want {
				t.Errorf("umask %04o: %s has mode %04o, want %04o", umask, filepath.Base(p), got, want)
			}
		}
		os.Remove(path)
		os.Remove(created)
	}
}

// TestWriteReplacesOrLeavesAlone checks that Write replaces a file whole, and that a
// failed write leaves the old content and no temporary file.
func TestWriteReplacesOrLeavesAlone(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.txt")
	if err := WriteFile(path, []byte("first")); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(path, []byte("second")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := Write(path, func(f *os.File) error {
		f.Write([]byte("half"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want it to wrap %v", err, boom)
	}
	if got, _ := os.ReadFile(path); string(got) != "second" {
		t.Errorf("after a failed write the file holds %q, want %q", got, "second")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("folder holds %v, want only f.txt", names)
	}
	if err := WriteFile(filepath.Join(dir, "missing", "f.txt"), nil); err == nil {
		t.Error("writing into a missing folder succeeded")
	}
}

// TestWriteNewLeavesAnExistingFile checks that WriteNew creates a missing file, refuses
// an existing one with fs.ErrExist, leaves it as it was, and leaves no temporary file.
func TestWriteNewLeavesAnExistingFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.txt")
	write := func(s string) func(f *os.File) error {
		return func(f *os.File) error { _, err := f.Write([]byte(s)); return err }
	}
	if err := WriteNew(path, write("first")); err != nil {
		t.Fatal(err)
	}
	err := WriteNew(path, write("second"))
	if !errors.Is(err, fs.ErrExist) {
		t.Errorf("WriteNew over an existing file: %v, want fs.ErrExist", err)
	}
	if raw, _ := os.ReadFile(path); string(raw) != "first" {
		t.Errorf("the existing file holds %q, want %q", raw, "first")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d files in the folder, want 1 (no temporary file left)", len(entries))
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	created := filepath.Join(dir, "created")
	f, err := os.Create(created)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	cst, _ := os.Stat(created)
	if st.Mode().Perm() != cst.Mode().Perm() {
		t.Errorf("mode %04o, want %04o as os.Create gives", st.Mode().Perm(), cst.Mode().Perm())
	}
}
