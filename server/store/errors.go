package store

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"

	"github.com/claude-usage/widget/shared"
)

// errKind is how the store reacts to a filesystem error.
type errKind int

const (
	kindOther     errKind = iota
	kindTransient         // EBUSY, EAGAIN, EINTR, ETIMEDOUT: retried
	kindNoSpace           // ENOSPC, EDQUOT: fail at once, 507
	kindPerm              // EACCES, EPERM, EROFS: fail at once
)

func classifyErr(err error) errKind {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return kindNoSpace
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EROFS):
		return kindPerm
	case errors.Is(err, syscall.EBUSY), errors.Is(err, syscall.EAGAIN),
		errors.Is(err, syscall.EINTR), errors.Is(err, syscall.ETIMEDOUT):
		return kindTransient
	}
	return kindOther
}

// errnoText is the short cause of err for a user-facing message: the errno's
// text when there is one (the path is already in the message).
func errnoText(err error) string {
	var en syscall.Errno
	if errors.As(err, &en) {
		return en.Error()
	}
	return err.Error()
}

// writeError turns a filesystem error met while writing in dir into the
// shared error with the code the contract gives it. The message names the
// free bytes and the directory's mode and owner, the two things an operator
// checks first.
func (s *FileStore) writeError(verb, dir string, err error) *shared.Error {
	var code shared.Code
	var what string
	switch classifyErr(err) {
	case kindNoSpace:
		code, what = shared.CodeStorageDiskFull, "disk full"
	case kindPerm:
		code, what = shared.CodeStoragePermissionDenied, "permission denied"
	default:
		code, what = shared.CodeStorageWriteFailed, "write failed ("+errnoText(err)+")"
	}
	return &shared.Error{
		Code:    code,
		Message: fmt.Sprintf("storage: %s %s %s (%s)", what, verb, dir, s.describeDir(dir)),
		Err:     err,
	}
}

// readError is writeError for reads: always STORAGE_READ_FAILED.
func (s *FileStore) readError(verb, path string, err error) *shared.Error {
	what := "read failed (" + errnoText(err) + ")"
	if classifyErr(err) == kindPerm {
		what = "permission denied"
	}
	return &shared.Error{
		Code:    shared.CodeStorageReadFailed,
		Message: fmt.Sprintf("storage: %s %s %s (%s)", what, verb, path, s.describeDir(path)),
		Err:     err,
	}
}

// describeDir reports free bytes, mode and owner of dir, or of its nearest
// existing parent when dir does not exist yet. It touches the disk, so it
// runs only on error paths.
func (s *FileStore) describeDir(dir string) string {
	free, ferr := s.fs.Statfs(s.dir)
	freeText := fmt.Sprintf("free %d bytes", free)
	if ferr != nil {
		s.check.Lock()
		free = s.freeBytes
		s.check.Unlock()
		freeText = fmt.Sprintf("free %d bytes at last check", free)
	}
	p := dir
	for i := 0; i < 8; i++ {
		fi, err := s.fs.Stat(p)
		if err == nil {
			if p == dir {
				return fmt.Sprintf("%s, dir mode %s owner %s", freeText, fi.Mode().String(), ownerOf(fi))
			}
			return fmt.Sprintf("%s, dir %s missing; %s mode %s owner %s", freeText, dir, p, fi.Mode().String(), ownerOf(fi))
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Sprintf("%s, dir %s: %s", freeText, p, errnoText(err))
		}
		parent := filepath.Dir(p)
		if parent == p {
			break
		}
		p = parent
	}
	return freeText + ", dir missing"
}

func errValidation(field, format string, args ...any) *shared.Error {
	e := shared.Errorf(shared.CodeValidationFailed, format, args...)
	e.Field = field
	return e
}
