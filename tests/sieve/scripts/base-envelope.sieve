require ["envelope", "fileinto"];
if envelope :domain :is "from" "example.com" { fileinto "env-com"; }
if envelope :localpart :matches "to" "b*" { fileinto "env-to-b"; }
if envelope :all :contains "from" "bounces" { fileinto "env-bounce"; }
