require ["body", "fileinto"];
if body :raw :contains "d=C3=A9cembre" { fileinto "raw-qp"; }
if body :raw :contains "boundary" { fileinto "raw-word"; }
if body :raw :contains "Schnäppchen" { fileinto "raw-8bit"; }
