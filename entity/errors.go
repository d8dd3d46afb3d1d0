package entity

import "errors"

// ErrVersionConflict: an Update named a version that is no longer the
// entity's current one; someone else changed it first.
var ErrVersionConflict = errors.New("entity version conflict")

// An entity that does not exist is reported with model.ErrUnresolved, the
// sentinel the model matches, by Resolve and Update alike.
