namespace MitmCache.FunctionalTests.Node;

/// <summary>A fact that is skipped, saying which apt package to install, when a tool is missing (or root is needed and absent).</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class RequiresExecutableFactAttribute(string path, string aptPackage) : FactAttribute
{
    /// <summary>Also skip unless the tests run as root (for mount namespaces).</summary>
    public bool Root { get; set; }

    public override string? Skip
    {
        get => base.Skip
            ?? (!File.Exists(path) ? $"{path} is not installed (apt-get install -y {aptPackage}); CI installs it, so this only skips locally"
                : Root && !Environment.IsPrivilegedProcess ? "needs root (it uses a private mount namespace)" : null);
        set => base.Skip = value;
    }
}
