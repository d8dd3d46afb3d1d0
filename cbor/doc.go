// Package cbor is understudy's snapshot format: the bytes that carry one
// session at one interaction from a primary to its backups.
//
// # Format
//
// A snapshot is one CBOR (RFC 8949) array, encoded deterministically (core
// deterministic encoding: shortest heads, definite lengths, map keys in
// bytewise order of their encodings), so the same session always gives the
// same bytes and a hash of the bytes identifies the state:
//
//	[ format, session id, epoch, seq, node, updated, [app versions...],
//	  created, app, version, root, next step id,
//	  {id: composite}, {id: simple}, {id: interactive}, {id: application} ]
//
// The first seven elements are the envelope, readable with PeekEnvelope
// without decoding the pools. Fixed records are arrays and pools are maps
// keyed by integer step id: a schema designed for speed, not a map of
// strings. Step records are [path, parent, done, params] followed by a
// composite's children or an application step's [app, version, root].
//
// Values use CBOR's own types and registered tags: integers, text, byte
// strings, booleans, null, arrays, maps with text keys; decimals as tag 4
// (decimal fraction, RFC 8949 §3.4.4); times as tag 1001 (RFC 9581 extended
// time: {1: seconds, -9: nanoseconds}), which keeps nanoseconds where tag 1
// would round them through a float; entity references as tag TagEntityRef
// [type, id, version].
//
// # Guarantees
//
// Encoding is deterministic: Encode(Decode(b)) == b for every b that Decode
// accepts (Decode accepts only the deterministic form). Snapshots written
// with format version 1 keep decoding in later versions (testdata holds a
// golden snapshot).
//
// Decoding treats its input as hostile. It enforces Limits on total size,
// nesting, array and map sizes and string lengths before it allocates; it
// rejects indefinite lengths, unknown tags, duplicate or unordered map keys,
// non-shortest heads, invalid UTF-8 and trailing bytes; it never panics.
// Every failure is a *DecodeError that says what was wrong and where, and
// names the session when the bytes got that far.
//
// The codec is written by hand against the schema because a reflection-based
// encoder spends most of its time discovering what the schema already says;
// github.com/fxamacker/cbor/v2 checks it in the tests (its strict decoder must
// accept every snapshot and its core deterministic encoder must reproduce it
// byte for byte) and gives the tools their diagnostic notation.
package cbor
