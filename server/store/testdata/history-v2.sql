-- A history database as smolchat wrote it at schema version 2 (git ef16f5a, before the settings of
-- issue #16): the schema as that version created it, and a conversation with a regenerated answer
-- (message 2, replaced by 3), an edited question (4, replaced by 6, with its answer 5) and an answer
-- to the edit (7). Tests load it to check that an upgrade keeps every message.
CREATE TABLE conversations (
	id          TEXT PRIMARY KEY,
	title       TEXT NOT NULL,
	think       INTEGER NOT NULL,
	temperature REAL,
	created_at  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL
);
CREATE INDEX conversations_updated ON conversations(updated_at DESC);
CREATE TABLE messages (
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
	replaced_by     INTEGER
);
CREATE INDEX messages_conversation ON messages(conversation_id, id);
INSERT INTO conversations VALUES ('0123456789abcdef', 'Old chat', 1, 0.3, 1764900000000, 1764900060000);
INSERT INTO messages VALUES (1, '0123456789abcdef', 'user', 'First question', '', 1764900000000, '', 0, 0, 0, 0, NULL);
INSERT INTO messages VALUES (2, '0123456789abcdef', 'assistant', 'First answer', 'first thoughts', 1764900010000, 'stop', 20, 5, 12.5, 300000, 3);
INSERT INTO messages VALUES (3, '0123456789abcdef', 'assistant', 'First answer, again', '', 1764900015000, 'stop', 20, 6, 11.0, 250000, NULL);
INSERT INTO messages VALUES (4, '0123456789abcdef', 'user', 'Second question', '', 1764900020000, '', 0, 0, 0, 0, 6);
INSERT INTO messages VALUES (5, '0123456789abcdef', 'assistant', 'Answer to the first wording', '', 1764900030000, 'stop', 40, 7, 10.5, 220000, 6);
INSERT INTO messages VALUES (6, '0123456789abcdef', 'user', 'Second question, edited', '', 1764900040000, '', 0, 0, 0, 0, NULL);
INSERT INTO messages VALUES (7, '0123456789abcdef', 'assistant', 'Second answer', '', 1764900060000, 'length', 40, 9, 10.0, 200000, NULL);
PRAGMA user_version = 2;
