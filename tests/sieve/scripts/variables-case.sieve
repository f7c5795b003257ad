require ["variables", "fileinto"];
set "Folder" "Mixed";
fileinto "${folder}-${FOLDER}";
