require "fileinto";
if address :domain :is "from" "example.com" { fileinto "domain-com"; }
if address :localpart :is "to" "bob" { fileinto "local-bob"; }
if address :all :is "cc" "frank@example.com" { fileinto "frank"; }
if address :is "from" "john doe@example.com" { fileinto "quoted-local"; }
