namespace MitmCache.Core.Tests;

/// <summary>A fact about Unix file modes: reported as skipped on Windows, never as passed.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class UnixFactAttribute : FactAttribute
{
    public UnixFactAttribute()
    {
        if (OperatingSystem.IsWindows())
        {
            Skip = "Unix file modes";
        }
    }
}

/// <summary>A theory about Unix file modes: reported as skipped on Windows, never as passed.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class UnixTheoryAttribute : TheoryAttribute
{
    public UnixTheoryAttribute()
    {
        if (OperatingSystem.IsWindows())
        {
            Skip = "Unix file modes";
        }
    }
}
