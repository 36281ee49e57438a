using MitmCache.Cli;

return await CommandLineApp.RunAsync(args);
