-- A command's overall state is settled after every change of one of its parts. Reading every
-- part each time made an apply to N agents cost N² row reads (at 50,000 agents the acks
-- queued for minutes on the command's row): these let a settle ask whether any part is still
-- open, whether any has begun, and which failed first, each from an index probe.
CREATE INDEX command_targets_open ON command_targets (command_id)
  WHERE state IN ('queued', 'running');
CREATE INDEX command_targets_begun ON command_targets (command_id) WHERE state <> 'queued';
CREATE INDEX command_targets_failed ON command_targets (command_id, finished_at, agent_name)
  WHERE state = 'failed';
