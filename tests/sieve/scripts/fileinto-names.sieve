require "fileinto";
fileinto "Archive/2026";
fileinto "INBOX.Sub";
fileinto "Café";
