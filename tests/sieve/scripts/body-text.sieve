require ["body", "fileinto"];
if body :contains "lunch" { fileinto "lunch"; }
if body :text :contains "budget" { fileinto "budget"; }
if body :contains "rapport" { fileinto "rapport"; }
