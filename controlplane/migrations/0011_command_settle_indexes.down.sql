DROP INDEX command_targets_failed;
DROP INDEX command_targets_begun;
DROP INDEX command_targets_open;
