module kvstore.local/cluster/webtool

go 1.25.0
