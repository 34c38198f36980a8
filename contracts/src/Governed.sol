// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @notice A single governance address that may hand its role over in two steps,
///         so a typo in the new address cannot lock the contract.
abstract contract Governed {
    address public governor;
    address public pendingGovernor;

    event GovernorProposed(address indexed current, address indexed proposed);
    event GovernorChanged(address indexed previous, address indexed current);

    error NotGovernor(address caller);
    error NotPendingGovernor(address caller);

    constructor(address initialGovernor) {
        governor = initialGovernor;
        emit GovernorChanged(address(0), initialGovernor);
    }

    modifier onlyGovernor() {
        if (msg.sender != governor) revert NotGovernor(msg.sender);
        _;
    }

    function proposeGovernor(address proposed) external onlyGovernor {
        pendingGovernor = proposed;
        emit GovernorProposed(governor, proposed);
    }

    function acceptGovernor() external {
        if (msg.sender != pendingGovernor) revert NotPendingGovernor(msg.sender);
        emit GovernorChanged(governor, msg.sender);
        governor = msg.sender;
        pendingGovernor = address(0);
    }
}
