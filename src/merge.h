/*
 * merge.h - the observation records a writing transaction keeps per store
 * (api.c writes them, merge.c re-checks them).  Each record says what a read
 * returned; the transaction may commit on a newer state of the store only if
 * every record still holds there.  Layout (little-endian; "key" is a u16
 * length + bytes; "pos" is u8 found, then key + id[16] when found):
 *
 *   OBS_KEY   key, u8 found, [id]     the first item with this key (add, update, remove, get)
 *   OBS_SEEK  key, u8 has_id, [id], pos   the first item >= (key, id)  (find, find_with_id)
 *   OBS_FIRST pos / OBS_LAST pos      the first / last item
 *   OBS_NEXT  key, id, pos            the item after (key, id)
 *   OBS_PREV  key, id, pos            the item before (key, id)
 *   OBS_ITEM  key, id, u8 with_value, u64 hash   the item exists with this content
 *
 * A type byte with OBS_OWN set marks a read made after the transaction had
 * written the store: its answer may come from the transaction's own writes,
 * which the newest state does not have yet.  Such a read is not run again;
 * merge.c checks instead that the stretch of items it covered (e.g. for
 * OBS_NEXT: after (key, id) up to and including where it landed) holds the
 * same items (key, id; for OBS_ITEM also the content) in the snapshot and
 * in the newest state.  Then the read gives the same answer after the
 * transaction's own writes are replayed there.
 *
 * The item count (sop_store_count) is no record: txn_store.counted is set,
 * and the newest count must equal the snapshot's (the transaction's own
 * changes add the same delta to both).
 */
#ifndef SOP_MERGE_H
#define SOP_MERGE_H

#define OBS_KEY 1
#define OBS_SEEK 2
#define OBS_FIRST 3
#define OBS_LAST 4
#define OBS_NEXT 5
#define OBS_PREV 6
#define OBS_ITEM 7
#define OBS_OWN 0x80 /* flag on the type byte */

#include "node.h"

/* Content hash of an item for OBS_ITEM: flags, key document and (when
 * with_value) the value bytes (for a separate value: its reference, which
 * changes whenever the value does). */
uint64_t merge_item_hash(const node_item *it, int with_value);

#endif
