INSERT INTO notes (body) VALUES ('Welcome: this preview has a database of its own.');
