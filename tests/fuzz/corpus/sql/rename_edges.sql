select "tether_snapshot""x", tether_snapshot"y", u&"tether_snapshot", U&tether_snapshot;
select 1tether_snapshot, $tether_snapshot, tether_snapshot$x;
