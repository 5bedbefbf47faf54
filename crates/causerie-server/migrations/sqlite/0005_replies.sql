-- A reply names the message it answers by its seq in the same room. The quote a reply shows is
-- read from the original each time, so that an edit or a deletion of it shows in its replies.
ALTER TABLE messages ADD COLUMN reply_to INTEGER;
