// Package store keeps the chat history: conversations and their messages, in one SQLite file (pure Go
// driver, WAL mode) so that history survives restarts and the binary needs no C toolchain.
package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// ErrNotFound is returned when a conversation or message does not exist.
var ErrNotFound = errors.New("not found")

// Conversation is one chat thread and its remembered settings.
type Conversation struct {
	ID    string
	Title string
	// Think is the thinking toggle of this conversation.
	Think bool
	// Temperature overrides the default sampling temperature when not nil.
	Temperature *float64
	// Settings are the system prompt and the other generation settings.
	Settings Settings
	// Renamed is set once the user gives the conversation a title; until then the title follows the
	// first message.
	Renamed   bool
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Settings are a conversation's system prompt and generation settings besides the thinking toggle and
// the temperature, which have columns of their own from version 1. A nil field takes the default; the
// server checks the ranges. They are kept as one JSON column, so that a setting added later needs no
// schema change.
type Settings struct {
	System        string   `json:"system,omitempty"`
	TopP          *float64 `json:"top_p,omitempty"`
	TopK          *int     `json:"top_k,omitempty"`
	MinP          *float64 `json:"min_p,omitempty"`
	RepeatPenalty *float64 `json:"repeat_penalty,omitempty"`
	MaxTokens     *int     `json:"max_tokens,omitempty"`
}

// Preset is a named set of settings saved on the server, and the shape of the defaults for new chats.
type Preset struct {
	Name        string   `json:"-"`
	Think       bool     `json:"think"`
	Temperature *float64 `json:"temperature,omitempty"`
	Settings
	// ThinkDefault, in the defaults for new chats only: "on" or "off" starts every new chat with
	// thinking so; "" with the Thinking switch as this browser last left it.
	ThinkDefault string `json:"think_default,omitempty"`
}

// Message is one turn of a conversation. The stats fields are set on assistant messages only.
type Message struct {
	ID             int64
	ConversationID string
	Role           string // "user" or "assistant"
	Content        string // for an assistant: the answer, without the reasoning
	Thinking       string // the assistant's reasoning, if any
	CreatedAt      time.Time

	FinishReason string        // "stop", "length", "cancelled" or "error"
	PromptTokens int           // tokens of the prompt this answer continued
	Tokens       int           // generated tokens
	TokensPerSec float64       // decoding speed
	TTFT         time.Duration // time to first token

	// The messages of a conversation form a tree: a regenerated answer or an edited message is a new
	// version, a sibling of the one it replaces, and the turns that followed the old version stay under
	// it. The conversation shows one branch, from its first message to its leaf.

	// ParentID is the message this one follows (0: the first of its conversation).
	ParentID int64
	// Versions are the IDs of this message's versions, in the order they were written, this one
	// included; Messages fills them in.
	Versions []int64
	// ReplacedBy, when set on a message to add, stores it as a version of that message that the
	// conversation does not switch to (a failed regeneration, kept). It is not read back.
	ReplacedBy int64
}

// Store is the history database. It is safe for concurrent use.
type Store struct {
	db  *sql.DB
	now func() time.Time // the clock of created_at and updated_at: time.Now; tests step their own
}

// Schema versions: 1, the first; 2 adds messages.replaced_by (earlier versions of a turn are kept); 3
// adds conversations.settings, the presets and the preferences (the defaults for new chats); 4 makes
// the messages a tree (messages.parent_id, conversations.leaf_id: the branch shown), replaced_by no
// longer read; 5 adds the full-text search indexes of titles and messages (SQLite FTS5); 6 adds
// conversations.renamed; 7 adds messages.shown_child (the child the branch shown last went through).
const schemaVersion = 7

var schema = `
CREATE TABLE IF NOT EXISTS conversations (
	id          TEXT PRIMARY KEY,
	title       TEXT NOT NULL,
	think       INTEGER NOT NULL,
	temperature REAL,
	created_at  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL,
	settings    TEXT NOT NULL DEFAULT '{}',
	leaf_id     INTEGER,
	renamed     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS conversations_updated ON conversations(updated_at DESC);
CREATE TABLE IF NOT EXISTS messages (
	id              INTEGER PRIMARY KEY AUTOINCREMENT,
	conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
	role            TEXT NOT NULL,
	content         TEXT NOT NULL,
	thinking        TEXT NOT NULL DEFAULT '',
	created_at      INTEGER NOT NULL,
	finish_reason   TEXT NOT NULL DEFAULT '',
	prompt_tokens   INTEGER NOT NULL DEFAULT 0,
	tokens          INTEGER NOT NULL DEFAULT 0,
	tokens_per_sec  REAL NOT NULL DEFAULT 0,
	ttft_us         INTEGER NOT NULL DEFAULT 0,
	replaced_by     INTEGER,
	parent_id       INTEGER,
	shown_child     INTEGER
);
CREATE INDEX IF NOT EXISTS messages_conversation ON messages(conversation_id, id);
CREATE TABLE IF NOT EXISTS presets (
	name     TEXT PRIMARY KEY,
	settings TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS prefs (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
` + searchSchema

// searchSchema indexes the conversations' titles and the messages' text for Search: FTS5 tables over
// the two tables' own rows (external content), kept up to date by triggers. Accents are folded.
var searchSchema = ftsIndex("conversations", "title", "rowid") + ftsIndex("messages", "content", "id")

// ftsIndex is the full-text index of one column of a table, table_fts, and the triggers that keep it.
func ftsIndex(table, column, rowid string) string {
	return strings.NewReplacer("{table}", table, "{column}", column, "{rowid}", rowid).Replace(`
CREATE VIRTUAL TABLE IF NOT EXISTS {table}_fts USING fts5({column}, content='{table}', content_rowid='{rowid}',
	tokenize='unicode61 remove_diacritics 2');
CREATE TRIGGER IF NOT EXISTS {table}_fts_insert AFTER INSERT ON {table} BEGIN
	INSERT INTO {table}_fts(rowid, {column}) VALUES (new.{rowid}, new.{column});
END;
CREATE TRIGGER IF NOT EXISTS {table}_fts_delete AFTER DELETE ON {table} BEGIN
	INSERT INTO {table}_fts({table}_fts, rowid, {column}) VALUES ('delete', old.{rowid}, old.{column});
END;
CREATE TRIGGER IF NOT EXISTS {table}_fts_update AFTER UPDATE OF {column} ON {table} BEGIN
	INSERT INTO {table}_fts({table}_fts, rowid, {column}) VALUES ('delete', old.{rowid}, old.{column});
	INSERT INTO {table}_fts(rowid, {column}) VALUES (new.{rowid}, new.{column});
END;
`)
}

// upgrades bring a database of an older schema version to the next: upgrades[v-1] from version v, each
// in a transaction. CREATE TABLE IF NOT EXISTS leaves an older table as it was, so added columns are
// added here.
var upgrades = []func(tx *sql.Tx) error{
	execUpgrade(`ALTER TABLE messages ADD COLUMN replaced_by INTEGER`),
	execUpgrade(`ALTER TABLE conversations ADD COLUMN settings TEXT NOT NULL DEFAULT '{}'`),
	upgradeToTree,
	func(tx *sql.Tx) error {
		// Index what is there already.
		_, err := tx.Exec(searchSchema + `INSERT INTO conversations_fts(conversations_fts) VALUES ('rebuild');
			INSERT INTO messages_fts(messages_fts) VALUES ('rebuild');`)
		return err
	},
	execUpgrade(`ALTER TABLE conversations ADD COLUMN renamed INTEGER NOT NULL DEFAULT 0`),
	execUpgrade(`ALTER TABLE messages ADD COLUMN shown_child INTEGER`), // unknown: the newest child, as before
}

func execUpgrade(q string) func(tx *sql.Tx) error {
	return func(tx *sql.Tx) error {
		_, err := tx.Exec(q)
		return err
	}
}

// upgradeToTree finds the parent of every message of a version 3 database and each conversation's leaf,
// by replaying how version 3 wrote them, in ID order: a message others point at with replaced_by (a
// regeneration, or an edit, which also replaced the turns after the edited one) took the place of the
// first of those, so it has that one's parent; a message pointing back at an earlier one (a failed
// regeneration, kept hidden) is a version of it; any other message followed the branch's last message.
func upgradeToTree(tx *sql.Tx) error {
	for _, q := range []string{`ALTER TABLE messages ADD COLUMN parent_id INTEGER`, `ALTER TABLE conversations ADD COLUMN leaf_id INTEGER`} {
		if _, err := tx.Exec(q); err != nil {
			return err
		}
	}
	type row struct {
		id, replacedBy int64
		conv           string
	}
	rows, err := tx.Query(`SELECT id, conversation_id, COALESCE(replaced_by, 0) FROM messages ORDER BY conversation_id, id`)
	if err != nil {
		return err
	}
	var all []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.conv, &r.replacedBy); err != nil {
			rows.Close()
			return err
		}
		all = append(all, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for start := 0; start < len(all); {
		end := start
		for end < len(all) && all[end].conv == all[start].conv {
			end++
		}
		conv := all[start:end]
		first := map[int64]int64{} // a replacing message → the first message it replaced
		for _, r := range conv {
			if r.replacedBy > r.id {
				if _, ok := first[r.replacedBy]; !ok {
					first[r.replacedBy] = r.id
				}
			}
		}
		parent := map[int64]int64{}
		var leaf int64
		for _, r := range conv {
			switch old, replaced := first[r.id]; {
			case replaced:
				parent[r.id], leaf = parent[old], r.id
			case r.replacedBy != 0 && r.replacedBy < r.id:
				parent[r.id] = parent[r.replacedBy]
			default:
				parent[r.id], leaf = leaf, r.id
			}
			if _, err := tx.Exec(`UPDATE messages SET parent_id = ? WHERE id = ?`, nullID(parent[r.id]), r.id); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(`UPDATE conversations SET leaf_id = ? WHERE id = ?`, nullID(leaf), conv[0].conv); err != nil {
			return err
		}
		start = end
	}
	return nil
}

// nullID stores message ID 0 (none) as NULL.
func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// Open opens (creating if needed) the database at path, in WAL mode with foreign keys on.
func Open(path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("store: creating the data directory: %w", err)
	}
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+filepath.ToSlash(path)+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("store: opening %s: %w", path, err)
	}
	s := &Store{db: db, now: time.Now}
	if err := s.migrate(); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: preparing %s: %w", path, err)
	}
	return s, nil
}

func (s *Store) migrate() error {
	var mode string
	if err := s.db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	if mode != "wal" {
		return fmt.Errorf("journal mode is %q, want wal", mode)
	}
	var v int
	if err := s.db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	if v > schemaVersion {
		return fmt.Errorf("database schema version %d is newer than this smolchat understands (%d)", v, schemaVersion)
	}
	if v == 0 {
		// A new database: the schema is created whole.
		if _, err := s.db.Exec(schema); err != nil {
			return err
		}
		_, err := s.db.Exec(fmt.Sprintf("PRAGMA user_version = %d", schemaVersion))
		return err
	}
	for ; v < schemaVersion; v++ {
		err := s.inTx(context.Background(), fmt.Sprintf("upgrading the schema from version %d", v), func(tx *sql.Tx) error {
			if err := upgrades[v-1](tx); err != nil {
				return err
			}
			_, err := tx.Exec(fmt.Sprintf("PRAGMA user_version = %d", v+1))
			return err
		})
		if err != nil {
			return err
		}
	}
	// New tables of later versions.
	_, err := s.db.Exec(schema)
	return err
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func millis(t time.Time) int64      { return t.UnixMilli() }
func fromMillis(ms int64) time.Time { return time.UnixMilli(ms) }

// CreateConversation stores a new conversation together with its first message, in one transaction (a
// failed write leaves no empty conversation behind), and returns both with their IDs and times set.
func (s *Store) CreateConversation(ctx context.Context, c Conversation, first Message) (Conversation, Message, error) {
	var msgs []Message
	c, err := s.createWith(ctx, "creating conversation", c, []Message{first}, &msgs)
	if err != nil {
		return Conversation{}, Message{}, err
	}
	return c, msgs[0], nil
}

// createWith stores a new conversation and its messages, each following the one before, in one
// transaction; the messages stored, with their IDs, go to out.
func (s *Store) createWith(ctx context.Context, what string, c Conversation, msgs []Message, out *[]Message) (Conversation, error) {
	c.ID = newID()
	now := s.now()
	c.CreatedAt, c.UpdatedAt = now, now
	err := s.inTx(ctx, what, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO conversations (id, title, think, temperature, settings, renamed, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			c.ID, c.Title, c.Think, c.Temperature, settingsJSON(c.Settings), c.Renamed, millis(now), millis(now)); err != nil {
			return err
		}
		var parent int64
		*out = (*out)[:0]
		for _, m := range msgs {
			m.ConversationID = c.ID
			m, err := s.insertMessage(ctx, tx, m, parent, true)
			if err != nil {
				return err
			}
			parent = m.ID
			*out = append(*out, m)
		}
		return nil
	})
	if err != nil {
		return Conversation{}, err
	}
	return c, nil
}

// ImportConversation stores a conversation with its messages, each following the one before, in one
// transaction, and returns it with its ID set.
func (s *Store) ImportConversation(ctx context.Context, c Conversation, msgs []Message) (Conversation, error) {
	if len(msgs) == 0 {
		return Conversation{}, errors.New("store: importing a conversation without messages")
	}
	var stored []Message
	return s.createWith(ctx, "importing a conversation", c, msgs, &stored)
}

// inTx runs f in a transaction, committed when f returns nil. Errors name what was being done.
func (s *Store) inTx(ctx context.Context, what string, f func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	defer tx.Rollback()
	if err := f(tx); err != nil {
		if errors.Is(err, ErrNotFound) {
			return err
		}
		return fmt.Errorf("store: %s: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	return nil
}

const conversationColumns = `id, title, think, temperature, settings, renamed, created_at, updated_at`

// settingsJSON is how Settings are stored.
func settingsJSON(s Settings) string {
	b, _ := json.Marshal(s) // strings, numbers and pointers to them: it cannot fail
	return string(b)
}

func scanConversation(row interface{ Scan(...any) error }) (Conversation, error) {
	var c Conversation
	var temp sql.NullFloat64
	var created, updated int64
	var settings string
	if err := row.Scan(&c.ID, &c.Title, &c.Think, &temp, &settings, &c.Renamed, &created, &updated); err != nil {
		return Conversation{}, err
	}
	if err := json.Unmarshal([]byte(settings), &c.Settings); err != nil {
		return Conversation{}, fmt.Errorf("the settings of conversation %s are not readable: %w", c.ID, err)
	}
	if temp.Valid {
		c.Temperature = &temp.Float64
	}
	c.CreatedAt, c.UpdatedAt = fromMillis(created), fromMillis(updated)
	return c, nil
}

// Conversation returns the conversation with the given ID, or ErrNotFound.
func (s *Store) Conversation(ctx context.Context, id string) (Conversation, error) {
	c, err := scanConversation(s.db.QueryRowContext(ctx,
		`SELECT `+conversationColumns+` FROM conversations WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Conversation{}, fmt.Errorf("conversation %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Conversation{}, fmt.Errorf("store: reading conversation %q: %w", id, err)
	}
	return c, nil
}

// Conversations lists up to limit conversations, most recently active first.
func (s *Store) Conversations(ctx context.Context, limit int) ([]Conversation, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT `+conversationColumns+` FROM conversations ORDER BY updated_at DESC, created_at DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("store: listing conversations: %w", err)
	}
	defer rows.Close()
	var out []Conversation
	for rows.Next() {
		c, err := scanConversation(rows)
		if err != nil {
			return nil, fmt.Errorf("store: listing conversations: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: listing conversations: %w", err)
	}
	return out, nil
}

// UpdateSettings stores a conversation's title, thinking toggle, temperature and settings.
func (s *Store) UpdateSettings(ctx context.Context, c Conversation) error {
	return updateSettings(ctx, s.db, c)
}

func updateSettings(ctx context.Context, db interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}, c Conversation) error {
	res, err := db.ExecContext(ctx, `UPDATE conversations SET title = ?, think = ?, temperature = ?, settings = ? WHERE id = ?`,
		c.Title, c.Think, c.Temperature, settingsJSON(c.Settings), c.ID)
	return checkOne(res, err, "updating conversation "+c.ID)
}

// DeleteConversation removes a conversation and its messages.
func (s *Store) DeleteConversation(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM conversations WHERE id = ?`, id)
	return checkOne(res, err, "deleting conversation "+id)
}

func checkOne(res sql.Result, err error, what string) error {
	if err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("store: %s: %w", what, ErrNotFound)
	}
	return nil
}

// AddMessage appends a message to its conversation's branch (or adds a version: Message.ReplacedBy),
// marks the conversation active, and returns the message with its ID and time set.
func (s *Store) AddMessage(ctx context.Context, m Message) (Message, error) {
	err := s.inTx(ctx, "adding message", func(tx *sql.Tx) error {
		var err error
		m, err = s.appendMessage(ctx, tx, m)
		return err
	})
	return m, err
}

// AddTurn stores the conversation's settings and appends the user's message m, in one transaction: the
// settings a message was sent with are stored with it or not at all.
func (s *Store) AddTurn(ctx context.Context, c Conversation, m Message) (Message, error) {
	err := s.inTx(ctx, "adding message", func(tx *sql.Tx) error {
		if err := updateSettings(ctx, tx, c); err != nil {
			return err
		}
		m.ConversationID = c.ID
		var err error
		m, err = s.appendMessage(ctx, tx, m)
		return err
	})
	return m, err
}

// ReplaceMessage adds m as a new version of message old (a regenerated answer): a sibling of old, which
// it takes the place of on the branch shown.
func (s *Store) ReplaceMessage(ctx context.Context, old int64, m Message) (Message, error) {
	err := s.inTx(ctx, fmt.Sprintf("replacing message %d", old), func(tx *sql.Tx) error {
		parent, err := parentOf(ctx, tx, m.ConversationID, old)
		if err != nil {
			return err
		}
		m, err = s.insertMessage(ctx, tx, m, parent, true)
		return err
	})
	return m, err
}

// EditMessage adds content as a new version of message id, in one transaction: a sibling of it, and the
// conversation's branch now ends there. The old version keeps the turns that followed it.
func (s *Store) EditMessage(ctx context.Context, conversationID string, id int64, content string) (Message, error) {
	var m Message
	err := s.inTx(ctx, fmt.Sprintf("editing message %d", id), func(tx *sql.Tx) error {
		old, err := scanMessage(tx.QueryRowContext(ctx, `SELECT `+messageColumns+` FROM messages WHERE conversation_id = ? AND id = ?`,
			conversationID, id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("message %d of conversation %s: %w", id, conversationID, ErrNotFound)
		}
		if err != nil {
			return err
		}
		m, err = s.insertMessage(ctx, tx, Message{ConversationID: conversationID, Role: old.Role, Content: content}, old.ParentID, true)
		return err
	})
	return m, err
}

// ShowVersion makes the conversation show message id: its branch now runs through it, and on below it
// the way it went when it was last shown (the versions shown then), else along the latest versions.
func (s *Store) ShowVersion(ctx context.Context, conversationID string, id int64) error {
	return s.inTx(ctx, fmt.Sprintf("showing message %d", id), func(tx *sql.Tx) error {
		if _, err := parentOf(ctx, tx, conversationID, id); err != nil {
			return err
		}
		leaf := id
		for {
			// The child shown last, if it is still a child; else the newest.
			var child int64
			err := tx.QueryRowContext(ctx, `SELECT COALESCE(
					(SELECT c.id FROM messages p JOIN messages c ON c.id = p.shown_child AND c.parent_id = p.id WHERE p.id = ?1),
					(SELECT MAX(id) FROM messages WHERE conversation_id = ?2 AND parent_id = ?1), 0)`,
				leaf, conversationID).Scan(&child)
			if err != nil {
				return err
			}
			if child == 0 {
				break
			}
			leaf = child
		}
		return setLeaf(ctx, tx, conversationID, leaf)
	})
}

// setLeaf makes leaf the end of the branch a conversation shows, and has every message above it
// remember the child the branch goes through, so that showing one of them again later shows this way
// down (ShowVersion).
func setLeaf(ctx context.Context, tx *sql.Tx, conversationID string, leaf int64) error {
	if _, err := tx.ExecContext(ctx, `UPDATE conversations SET leaf_id = ? WHERE id = ?`, leaf, conversationID); err != nil {
		return err
	}
	for id := leaf; id != 0; {
		parent, err := parentOf(ctx, tx, conversationID, id)
		if err != nil {
			return err
		}
		if parent != 0 {
			if _, err := tx.ExecContext(ctx, `UPDATE messages SET shown_child = ? WHERE id = ?`, id, parent); err != nil {
				return err
			}
		}
		id = parent
	}
	return nil
}

// parentOf is the parent of message id of a conversation (0: none), or ErrNotFound.
func parentOf(ctx context.Context, tx *sql.Tx, conversationID string, id int64) (int64, error) {
	var parent int64
	err := tx.QueryRowContext(ctx, `SELECT COALESCE(parent_id, 0) FROM messages WHERE conversation_id = ? AND id = ?`,
		conversationID, id).Scan(&parent)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("message %d of conversation %s: %w", id, conversationID, ErrNotFound)
	}
	return parent, err
}

// appendMessage adds m after the last message of its conversation's branch, which it becomes; or, with
// m.ReplacedBy set, as a hidden version of that message.
func (s *Store) appendMessage(ctx context.Context, tx *sql.Tx, m Message) (Message, error) {
	if m.ReplacedBy != 0 {
		parent, err := parentOf(ctx, tx, m.ConversationID, m.ReplacedBy)
		if err != nil {
			return Message{}, err
		}
		return s.insertMessage(ctx, tx, m, parent, false)
	}
	var leaf int64
	err := tx.QueryRowContext(ctx, `SELECT COALESCE(leaf_id, 0) FROM conversations WHERE id = ?`, m.ConversationID).Scan(&leaf)
	if errors.Is(err, sql.ErrNoRows) {
		return Message{}, fmt.Errorf("adding message to conversation %s: %w", m.ConversationID, ErrNotFound)
	}
	if err != nil {
		return Message{}, err
	}
	return s.insertMessage(ctx, tx, m, leaf, true)
}

// insertMessage stores m under parent (0: none), makes it the end of the branch shown if leaf, and
// marks the conversation active.
func (s *Store) insertMessage(ctx context.Context, tx *sql.Tx, m Message, parent int64, leaf bool) (Message, error) {
	m.CreatedAt = s.now()
	m.ParentID = parent
	res, err := tx.ExecContext(ctx, `UPDATE conversations SET updated_at = ? WHERE id = ?`, millis(m.CreatedAt), m.ConversationID)
	if err := checkOne(res, err, "adding message to conversation "+m.ConversationID); err != nil {
		return Message{}, err
	}
	res, err = tx.ExecContext(ctx, `INSERT INTO messages
		(conversation_id, role, content, thinking, created_at, finish_reason, prompt_tokens, tokens, tokens_per_sec, ttft_us, replaced_by, parent_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		m.ConversationID, m.Role, m.Content, m.Thinking, millis(m.CreatedAt), m.FinishReason,
		m.PromptTokens, m.Tokens, m.TokensPerSec, m.TTFT.Microseconds(), nullID(m.ReplacedBy), nullID(parent))
	if err != nil {
		return Message{}, err
	}
	if m.ID, err = res.LastInsertId(); err != nil {
		return Message{}, err
	}
	if leaf {
		if err := setLeaf(ctx, tx, m.ConversationID, m.ID); err != nil {
			return Message{}, err
		}
	}
	return m, nil
}

const messageColumns = `id, conversation_id, role, content, thinking, created_at, finish_reason,
	prompt_tokens, tokens, tokens_per_sec, ttft_us, COALESCE(parent_id, 0)`

func scanMessage(row interface{ Scan(...any) error }) (Message, error) {
	var m Message
	var created, ttft int64
	err := row.Scan(&m.ID, &m.ConversationID, &m.Role, &m.Content, &m.Thinking, &created, &m.FinishReason,
		&m.PromptTokens, &m.Tokens, &m.TokensPerSec, &ttft, &m.ParentID)
	m.CreatedAt, m.TTFT = fromMillis(created), time.Duration(ttft)*time.Microsecond
	return m, err
}

// AllMessages returns every message of a conversation, every version of every turn, in the order they
// were written.
func (s *Store) AllMessages(ctx context.Context, conversationID string) ([]Message, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT `+messageColumns+` FROM messages WHERE conversation_id = ? ORDER BY id`, conversationID)
	if err != nil {
		return nil, fmt.Errorf("store: reading messages of %s: %w", conversationID, err)
	}
	defer rows.Close()
	var out []Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("store: reading messages of %s: %w", conversationID, err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: reading messages of %s: %w", conversationID, err)
	}
	return out, nil
}

// Messages returns the branch a conversation shows, from its first message to its leaf, each message
// with its versions.
func (s *Store) Messages(ctx context.Context, conversationID string) ([]Message, error) {
	all, err := s.AllMessages(ctx, conversationID)
	if err != nil || len(all) == 0 {
		return nil, err
	}
	var leaf int64
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(leaf_id, 0) FROM conversations WHERE id = ?`, conversationID).Scan(&leaf); err != nil {
		return nil, fmt.Errorf("store: reading messages of %s: %w", conversationID, err)
	}
	byID := make(map[int64]Message, len(all))
	children := map[int64][]int64{} // by parent, in ID order
	for _, m := range all {
		byID[m.ID] = m
		children[m.ParentID] = append(children[m.ParentID], m.ID)
	}
	var out []Message
	for id := leaf; id != 0; {
		m, ok := byID[id]
		if !ok || len(out) > len(all) {
			return nil, fmt.Errorf("store: the branch of conversation %s is broken at message %d", conversationID, id)
		}
		m.Versions = children[m.ParentID]
		out = append(out, m)
		id = m.ParentID
	}
	slices.Reverse(out)
	return out, nil
}

// Message returns one message of a conversation, on its branch or not, or ErrNotFound.
func (s *Store) Message(ctx context.Context, conversationID string, id int64) (Message, error) {
	m, err := scanMessage(s.db.QueryRowContext(ctx,
		`SELECT `+messageColumns+` FROM messages WHERE conversation_id = ? AND id = ?`, conversationID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Message{}, fmt.Errorf("message %d of conversation %s: %w", id, conversationID, ErrNotFound)
	}
	if err != nil {
		return Message{}, fmt.Errorf("store: reading message %d: %w", id, err)
	}
	return m, nil
}

// Presets lists the saved presets by name.
func (s *Store) Presets(ctx context.Context) ([]Preset, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, settings FROM presets ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("store: listing presets: %w", err)
	}
	defer rows.Close()
	var out []Preset
	for rows.Next() {
		var name, js string
		if err := rows.Scan(&name, &js); err != nil {
			return nil, fmt.Errorf("store: listing presets: %w", err)
		}
		var p Preset
		if err := json.Unmarshal([]byte(js), &p); err != nil {
			return nil, fmt.Errorf("store: preset %q is not readable: %w", name, err)
		}
		p.Name = name
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: listing presets: %w", err)
	}
	return out, nil
}

// SavePreset stores a preset, replacing one of the same name.
func (s *Store) SavePreset(ctx context.Context, p Preset) error {
	js, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("store: saving preset %q: %w", p.Name, err)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO presets (name, settings) VALUES (?, ?)
		ON CONFLICT(name) DO UPDATE SET settings = excluded.settings`, p.Name, string(js)); err != nil {
		return fmt.Errorf("store: saving preset %q: %w", p.Name, err)
	}
	return nil
}

// DeletePreset removes a preset, or returns ErrNotFound.
func (s *Store) DeletePreset(ctx context.Context, name string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM presets WHERE name = ?`, name)
	return checkOne(res, err, fmt.Sprintf("deleting preset %q", name))
}

// prefNewChat is the preference holding the settings new chats start with.
const prefNewChat = "new_chat"

// NewChatDefaults returns the settings saved for new chats; ok is false when none were saved.
func (s *Store) NewChatDefaults(ctx context.Context) (p Preset, ok bool, err error) {
	var js string
	err = s.db.QueryRowContext(ctx, `SELECT value FROM prefs WHERE key = ?`, prefNewChat).Scan(&js)
	if errors.Is(err, sql.ErrNoRows) {
		return Preset{}, false, nil
	}
	if err != nil {
		return Preset{}, false, fmt.Errorf("store: reading the defaults for new chats: %w", err)
	}
	if err := json.Unmarshal([]byte(js), &p); err != nil {
		return Preset{}, false, fmt.Errorf("store: the defaults for new chats are not readable: %w", err)
	}
	return p, true, nil
}

// SaveNewChatDefaults stores the settings new chats start with.
func (s *Store) SaveNewChatDefaults(ctx context.Context, p Preset) error {
	js, err := json.Marshal(p)
	if err == nil {
		_, err = s.db.ExecContext(ctx, `INSERT INTO prefs (key, value) VALUES (?, ?)
			ON CONFLICT(key) DO UPDATE SET value = excluded.value`, prefNewChat, string(js))
	}
	if err != nil {
		return fmt.Errorf("store: saving the defaults for new chats: %w", err)
	}
	return nil
}

// Rename sets a conversation's title, which from now on no longer follows its first message.
func (s *Store) Rename(ctx context.Context, id, title string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE conversations SET title = ?, renamed = 1 WHERE id = ?`, title, id)
	return checkOne(res, err, "renaming conversation "+id)
}

// Match marks the words a search found in a Hit's snippet.
const (
	MatchStart = "\x02"
	MatchEnd   = "\x03"
)

// Hit is a conversation a search found: in its title, or in one of its messages, whose words around
// the match are the Snippet (the matched words between MatchStart and MatchEnd).
type Hit struct {
	Conversation
	Snippet string
}

// Search finds the conversations whose title or messages (any version) hold every word of query, as a
// word or the start of one, accents folded: most recently active first, at most limit.
func (s *Store) Search(ctx context.Context, query string, limit int) ([]Hit, error) {
	var terms []string
	for _, w := range strings.Fields(query) {
		terms = append(terms, `"`+strings.ReplaceAll(w, `"`, `""`)+`"*`)
	}
	if len(terms) == 0 {
		return nil, nil
	}
	match := strings.Join(terms, " ")
	rows, err := s.db.QueryContext(ctx, `
		SELECT `+prefixed("c.", conversationColumns)+`, hit.snippet FROM conversations c JOIN (
			SELECT c2.id AS id, '' AS snippet FROM conversations_fts JOIN conversations c2 ON c2.rowid = conversations_fts.rowid
				WHERE conversations_fts MATCH ?1
			UNION ALL
			SELECT m.conversation_id, snippet(messages_fts, 0, ?2, ?3, '…', 12) FROM messages_fts
				JOIN messages m ON m.id = messages_fts.rowid WHERE messages_fts MATCH ?1
		) hit ON hit.id = c.id
		ORDER BY c.updated_at DESC, c.created_at DESC`, match, MatchStart, MatchEnd)
	if err != nil {
		return nil, fmt.Errorf("store: searching for %q: %w", query, err)
	}
	defer rows.Close()
	var out []Hit
	seen := map[string]int{}
	for rows.Next() {
		var snippet string
		c, err := scanConversation(scanWith{rows, &snippet})
		if err != nil {
			return nil, fmt.Errorf("store: searching for %q: %w", query, err)
		}
		if i, ok := seen[c.ID]; ok {
			if out[i].Snippet == "" {
				out[i].Snippet = snippet // a title's hit shows a message's words too, when one matched
			}
			continue
		}
		if len(out) == limit {
			continue
		}
		seen[c.ID] = len(out)
		out = append(out, Hit{Conversation: c, Snippet: snippet})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: searching for %q: %w", query, err)
	}
	return out, nil
}

// prefixed qualifies each of a list of columns with a table's alias.
func prefixed(alias, columns string) string {
	var out []string
	for _, c := range strings.Split(columns, ",") {
		out = append(out, alias+strings.TrimSpace(c))
	}
	return strings.Join(out, ", ")
}

// scanWith scans a row's leading columns with another scanner's reader and the last into extra.
type scanWith struct {
	rows  *sql.Rows
	extra *string
}

func (w scanWith) Scan(dst ...any) error { return w.rows.Scan(append(dst, w.extra)...) }
