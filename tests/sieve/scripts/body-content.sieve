require ["body", "fileinto"];
if body :content "text/html" :contains "rapport" { fileinto "html"; }
if body :content "text/plain" :contains "1200 euros" { fileinto "plain"; }
if body :content "application" :contains "secret-token" { fileinto "pdf"; }
if body :content "text" :contains "mail system" { fileinto "report-text"; }
