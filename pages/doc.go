// Package pages renders what a user sees: an application's step, a
// finished session's summary, or a message (an error, a moment of
// unavailability), as HTML through the generic templates or an
// application's own, or as the page's JSON twin; and a page outside a
// running node, for the replay tool's previews, through the same
// templates.
//
// It knows pages (model.Page) and HTTP, not sessions, snapshots or
// replication: the node decides what to show, this package shows it.
package pages
