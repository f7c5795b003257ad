if address :domain :is "from" "shop.example" { discard; }
