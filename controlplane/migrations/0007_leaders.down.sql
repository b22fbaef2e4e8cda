DROP TABLE cluster_leaders;
