package group

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// errNoEntry: the bucket holds no entry for the group.
var errNoEntry = errors.New("no group entry")

// readEntry reads the group entry from the bucket's stream leader. A key
// value Get may be answered by any replica (buckets allow direct gets), and
// a lagging one could make a spurious conflict look real; decisions about
// a conflict read here.
func (m *Member) readEntry(ctx context.Context) (Entry, error) {
	bucket := m.cfg.Subjects.GroupsBucket()
	req, _ := json.Marshal(map[string]string{"last_by_subj": "$KV." + bucket + "." + m.cfg.Group})
	msg, err := m.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET.KV_"+bucket, req)
	if err != nil {
		return Entry{}, fmt.Errorf("read group %s from the leader: %w", m.cfg.Group, err)
	}
	var resp struct {
		Message *struct {
			Seq  uint64 `json:"seq"`
			Data []byte `json:"data"`
			Hdrs []byte `json:"hdrs"`
		} `json:"message"`
		Error *struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return Entry{}, fmt.Errorf("read group %s from the leader: %w", m.cfg.Group, err)
	}
	if resp.Error != nil {
		if resp.Error.Code == 404 {
			return Entry{}, errNoEntry
		}
		return Entry{}, fmt.Errorf("read group %s from the leader: %s", m.cfg.Group, resp.Error.Description)
	}
	if resp.Message == nil || len(resp.Message.Data) == 0 {
		return Entry{}, errNoEntry // a delete or purge marker
	}
	return decodeEntry(resp.Message.Data, resp.Message.Seq)
}
